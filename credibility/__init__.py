"""Credibility evidence: verification, validation, UQ, sensitivity, V&V 40 plans and reports.

Submodules
----------
statistics
    Weighted statistics of a virtual cohort: means, proportions, percentiles, Kish effective n.
verification
    Observed order of accuracy and the Grid Convergence Index (Roache 1994; Celik et al. 2008).
comparators
    Published clinical figures with their role (calibration or validation), time point and
    the patients they describe.
metrics
    ASME V&V 20 comparison error and the area metric.
validation
    Validation of a virtual trial against comparators: selection, prediction, comparison.
applicability
    Overlap of the virtual cohort with the comparator populations.
calibration
    Bayesian calibration of model parameters on a polynomial-chaos emulator.
uq
    Monte Carlo and polynomial chaos propagation, per-patient prediction intervals and
    population-level trial-outcome intervals.
sensitivity
    Sobol, Morris, FAST/RBD, PCE-Sobol (independent inputs); delta, PAWN, Shapley (dependent).
evidence
    The evidence vocabulary (every key a plan may name) and the evidence dict of a run.
plan
    V&V 40 credibility plans: model risk, goals per credibility factor, goal-vs-achieved.
tables
    Result tables: by arm, paired between arms, by subgroup, failures.
report
    The credibility report (self-contained HTML, PDF via WeasyPrint).
errors
    :class:`CredibilityError`, the base of every error the package raises for bad input.
"""

from __future__ import annotations

from . import (
    applicability,
    comparators,
    evidence,
    metrics,
    plan,
    report,
    sensitivity,
    statistics,
    uq,
    validation,
    verification,
)
from .applicability import applicability_summary
from .comparators import ComparatorError, load_comparators, load_populations, rows_with_role
from .errors import CredibilityError, ValidationError
from .evidence import EVIDENCE_KEYS, collect_evidence
from .metrics import area_metric, comparison_error
from .plan import Plan, PlanError, assess, load_plan, model_risk
from .report import build_context, render_report
from .statistics import proportion_interval
from .validation import validate
from .verification import GCIResult, VerificationError, gci, observed_order

__all__ = [
    "EVIDENCE_KEYS",
    "ComparatorError",
    "CredibilityError",
    "GCIResult",
    "Plan",
    "PlanError",
    "ValidationError",
    "VerificationError",
    "applicability",
    "applicability_summary",
    "area_metric",
    "assess",
    "build_context",
    "collect_evidence",
    "comparators",
    "comparison_error",
    "evidence",
    "gci",
    "load_comparators",
    "load_populations",
    "load_plan",
    "metrics",
    "model_risk",
    "observed_order",
    "plan",
    "proportion_interval",
    "render_report",
    "report",
    "rows_with_role",
    "sensitivity",
    "statistics",
    "uq",
    "validate",
    "validation",
    "verification",
]
