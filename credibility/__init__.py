"""Credibility evidence: verification, validation, UQ, sensitivity, V&V 40 plans and reports.

Submodules
----------
verification
    Observed order of accuracy and the Grid Convergence Index (Roache 1994; Celik et al. 2008).
comparators
    Published clinical figures with their role (calibration or validation), time point and
    the patients they describe.
validation
    ASME V&V 20 comparison error, area metric, exact proportion intervals, validation of a
    virtual trial against comparators, applicability of comparator populations.
uq
    Monte Carlo and polynomial chaos propagation, per-patient prediction intervals and
    population-level trial-outcome intervals.
sensitivity
    Sobol, Morris, FAST/RBD, PCE-Sobol (independent inputs); delta, PAWN, Shapley (dependent).
plan
    V&V 40 credibility plans: model risk, goals per credibility factor, goal-vs-achieved.
report
    The credibility report (self-contained HTML, PDF via WeasyPrint).
"""

from __future__ import annotations

from . import comparators, plan, report, sensitivity, uq, validation, verification
from .comparators import ComparatorError, load_comparators, load_populations, rows_with_role
from .plan import Plan, PlanError, assess, load_plan, model_risk
from .report import build_context, collect_evidence, render_report
from .validation import (
    ValidationError,
    applicability,
    area_metric,
    comparison_error,
    proportion_interval,
    validate,
)
from .verification import GCIResult, VerificationError, gci, observed_order

__all__ = [
    "ComparatorError",
    "GCIResult",
    "Plan",
    "PlanError",
    "ValidationError",
    "VerificationError",
    "applicability",
    "area_metric",
    "assess",
    "build_context",
    "collect_evidence",
    "comparators",
    "comparison_error",
    "gci",
    "load_comparators",
    "load_populations",
    "load_plan",
    "model_risk",
    "observed_order",
    "plan",
    "proportion_interval",
    "render_report",
    "report",
    "rows_with_role",
    "sensitivity",
    "uq",
    "validate",
    "validation",
    "verification",
]
