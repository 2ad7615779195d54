"""The cohorts package's errors: one base class, specific subclasses per job.

Every exception the package raises for bad input derives from :class:`CohortError`, a
``ValueError``: ``CohortSpecError`` (a population spec), ``MarginalError`` (a marginal
distribution's parameters) and ``ExpressionError`` (a derived-variable expression).
"""

from __future__ import annotations

__all__ = ["CohortError"]


class CohortError(ValueError):
    """Base class of the cohorts package's errors (bad input, not a bug)."""
