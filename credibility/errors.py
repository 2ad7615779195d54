"""The credibility package's errors: one base class, specific subclasses per job."""

from __future__ import annotations

__all__ = ["CredibilityError", "ValidationError"]


class CredibilityError(ValueError):
    """Base class of the credibility package's errors (bad input, not a bug)."""


class ValidationError(CredibilityError):
    """Invalid input to a validation calculation (shapes, arms, quantities, intervals)."""
