"""The models package's errors: one base class, specific subclasses per job.

Every exception the package raises for bad input derives from :class:`ModelError`, a
``ValueError``: ``ModelInputError`` (a patient's inputs), ``ModelNotFoundError`` (a model
name, also a ``LookupError``), ``ModelCardError`` (a model card), ``ExternalSolverConfigError``
(an external solver's options) and each built-in model's settings and device errors.
"""

from __future__ import annotations

__all__ = ["ModelError"]


class ModelError(ValueError):
    """Base class of the models package's errors (bad input, not a bug)."""
