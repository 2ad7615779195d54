"""The cohorts package's errors: one base class, specific subclasses per job.

Every exception the package raises for bad input derives from :class:`CohortError`, a
``ValueError``: ``CohortSpecError`` (a population spec), ``MarginalError`` (a marginal
distribution's parameters), ``ExpressionError`` (a derived-variable expression),
``TargetError`` (a target table), :class:`MatchError` (matching options that cannot work)
and :class:`InfeasibleTargetsError` (targets no matching can meet).
"""

from __future__ import annotations

__all__ = ["CohortError", "FileKeyError", "InfeasibleTargetsError", "MatchError"]


class CohortError(ValueError):
    """Base class of the cohorts package's errors (bad input, not a bug)."""


class FileKeyError(CohortError):
    """An entry of an input file (a spec, a target table) is invalid: file, key and why.

    Attributes
    ----------
    source_file : str
        The file (or the label given for a dict).
    key : str
        Dotted key of the offending entry, e.g. ``"targets[2].proportions"``.
    detail : str
        What is wrong and what is allowed.
    """

    def __init__(self, source_file: str, key: str, detail: str):
        self.source_file = source_file
        self.key = key
        self.detail = detail
        super().__init__(f"{source_file}: key {key!r}: {detail}")


class MatchError(CohortError):
    """Matching a cohort to a target table cannot be done as asked (method, options, pool)."""


class InfeasibleTargetsError(MatchError):
    """No cohort the method can produce meets every target.

    Attributes
    ----------
    targets : list of str
        Labels of the targets the nearest achievable cohort misses.
    max_abs_smd : float
        Largest absolute standardised difference of that nearest cohort.
    certificate : pandas.DataFrame
        Its certificate (:func:`cohorts.certificate`), every target with achieved value,
        interval and standardised difference.
    """

    def __init__(self, message: str, targets, max_abs_smd: float, certificate):
        super().__init__(message)
        self.targets = list(targets)
        self.max_abs_smd = max_abs_smd
        self.certificate = certificate
