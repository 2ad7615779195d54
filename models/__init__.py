"""Device models: the Model protocol, the registry and built-in models."""

from __future__ import annotations

from .base import STATUS, STATUS_FLAG_MEANINGS, Model, ModelInputError, Variable, run_batch
from .registry import ModelNotFoundError, available_models, get_model

__all__ = [
    "STATUS",
    "STATUS_FLAG_MEANINGS",
    "Model",
    "ModelInputError",
    "ModelNotFoundError",
    "Variable",
    "available_models",
    "get_model",
    "run_batch",
]
