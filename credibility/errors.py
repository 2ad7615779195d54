"""The credibility package's errors: one base class, specific subclasses per job.

Every exception the package raises for bad input derives from :class:`CredibilityError`, a
``ValueError``: ``ComparatorError`` (comparators), ``CalibrationError`` (calibration),
``EvidenceError`` (evidence), ``PlanError`` (plan), ``ReportError`` (report), ``TableError``
(tables), ``UncertaintySpecError`` (uq, sensitivity), ``ValidationError`` (statistics,
metrics, validation, applicability) and ``VerificationError`` (verification).
"""

from __future__ import annotations

__all__ = ["CredibilityError", "ValidationError"]


class CredibilityError(ValueError):
    """Base class of the credibility package's errors (bad input, not a bug)."""


class ValidationError(CredibilityError):
    """Invalid input to a validation calculation (shapes, arms, quantities, intervals)."""
