"""Device models: the Model protocol, the registry and built-in models."""

from __future__ import annotations

from .base import (
    STATUS,
    STATUS_FLAG_MEANINGS,
    Event,
    Model,
    ModelInputError,
    Variable,
    run_batch,
)
from .card import ModelCardError, load_card
from .errors import ModelError
from .registry import ModelNotFoundError, available_models, get_model


def __getattr__(name: str):
    # heavy or optional model classes load on first use
    if name == "ExternalSolverModel":
        from .external import ExternalSolverModel

        return ExternalSolverModel
    if name == "TAVRModel":
        from .tavr import TAVRModel

        return TAVRModel
    raise AttributeError(f"module 'models' has no attribute {name!r}")


__all__ = [
    "STATUS",
    "STATUS_FLAG_MEANINGS",
    "Event",
    "ExternalSolverModel",
    "Model",
    "ModelCardError",
    "ModelError",
    "ModelInputError",
    "ModelNotFoundError",
    "TAVRModel",
    "Variable",
    "available_models",
    "get_model",
    "load_card",
    "run_batch",
]
