"""Find a model by built-in name, entry point (group ``isct.models``), import string or class.

Follows the xarray backends pattern: built-ins and entry points fill one registry; an
unknown name raises an error that lists what is available.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from .base import Model
from .errors import ModelError

__all__ = ["ModelNotFoundError", "available_models", "get_model"]

ENTRY_POINT_GROUP = "isct.models"

#: Built-in models: registry name → import string (imported lazily).
_BUILTINS: dict[str, str] = {
    "tavr": "models.tavr:TAVRModel",
    "coronary": "models.coronary:CoronaryModel",
    "external": "models.external:ExternalSolverModel",
    "orifice": "models.examples:OrificeModel",
    "flaky_orifice": "models.examples:FlakyOrificeModel",
}


class ModelNotFoundError(ModelError, LookupError):
    """No model is registered under the requested name or import string."""


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_models() -> list[str]:
    """Names of built-in and entry-point models."""
    return sorted(set(_BUILTINS) | set(_entry_points()))


def _import_string(spec: str) -> type:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ModelNotFoundError(
            f"cannot import module {module_name!r} for model {spec!r}: {err}"
        ) from err
    try:
        return getattr(module, attr)
    except AttributeError as err:
        raise ModelNotFoundError(
            f"module {module_name!r} has no attribute {attr!r} (model {spec!r})"
        ) from err


def get_model(spec: str | type | Model, **kwargs: Any) -> Model:
    """Return a model instance.

    Parameters
    ----------
    spec : str, type or Model
        A registry name (``"tavr"``), an import string ``"package.module:Class"``, a Model
        subclass, or an instance (returned as is).
    **kwargs
        Passed to the class constructor.

    Raises
    ------
    ModelNotFoundError
        If the name is unknown (the message lists the available names) or the import fails.
    TypeError
        If the object found is not a :class:`Model` subclass.
    """
    if isinstance(spec, Model):
        return spec
    if isinstance(spec, type):
        cls = spec
    elif ":" in spec:
        cls = _import_string(spec)
    elif spec in _BUILTINS:
        cls = _import_string(_BUILTINS[spec])
    elif spec in (eps := _entry_points()):
        cls = eps[spec].load()
    else:
        raise ModelNotFoundError(
            f"unknown model {spec!r}; available: {', '.join(available_models())} "
            "(or give an import string 'package.module:Class')"
        )
    if not (isinstance(cls, type) and issubclass(cls, Model)):
        raise TypeError(f"{spec!r} resolves to {cls!r}, which is not a models.Model subclass")
    return cls(**kwargs)
