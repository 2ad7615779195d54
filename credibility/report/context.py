"""The report's template context: every section built from whatever the run produced."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr

from credibility.errors import CredibilityError
from credibility.plan import Plan, assess

from . import population, sections
from . import sizing as sizing_sections

__all__ = [
    "NOT_COMPUTED",
    "PartialContext",
    "ReportError",
    "build_context",
    "finish_context",
    "start_context",
]

NOT_COMPUTED = "Not computed in this run."


class ReportError(CredibilityError):
    """The report cannot be built (missing variable, missing template, PDF engine absent)."""


def build_context(
    *,
    assessment: pd.DataFrame | None = None,
    evidence: Mapping[str, Any] | None = None,
    manifest: Mapping[str, Any] | None = None,
    **parts: Any,
) -> dict[str, Any]:
    """Compute every table and figure of the report; missing pieces become explicit notes.

    Parameters
    ----------
    trial : mapping
        Trial metadata: ``name`` (required), optional ``title``, ``description``, ``sponsor``,
        ``seed``, ``n_patients``, ``arms`` …; shown in the summary.
    cohort : xarray.Dataset, optional
        Virtual cohort (dim ``patient``).
    outcomes : xarray.Dataset, optional
        Outcomes (dims ``arm, patient``) with ``status``.
    cohort_check : pandas.DataFrame, optional
        Target vs generated table of the cohort (representation vs target).
    verification : mapping, optional
        Verification evidence: scalars (e.g. ``GCIResult.summary()``) and tables (a
        DataFrame with ``gci_fine_pct``, e.g. ``GCIResult.to_frame(names)``, is also drawn).
    validation : pandas.DataFrame, optional
        :func:`credibility.validation.validate` output.
    applicability : pandas.DataFrame, optional
        :func:`credibility.applicability.applicability` output.
    uq, sa : xarray.Dataset, optional
        UQ and sensitivity results (rendered generically as tables).
    plan : Plan or mapping, optional
        The credibility plan (a plan dict is validated).
    assessment : pandas.DataFrame, optional
        :func:`credibility.plan.assess` output; computed from ``plan`` and ``evidence``
        when not given and both are.
    evidence : mapping, optional
        Evidence dict (shown in an appendix; used for the assessment if needed).
    model_card : mapping, optional
        ``name``, ``version``, ``description``, ``inputs``/``outputs`` (with units),
        ``assumptions``, ``limitations``, ``references``, ``context_of_use`` …
    manifest : mapping, optional
        Contents of ``manifest.json``.
    figures : mapping of str to path, optional
        Extra PNG figures (e.g. ``cohort_check``, ``sa_indices``), placed in the section their
        key suggests (``cohort*``/``subgroup*`` → subgroups, ``sa*``/``sensitivity*``/
        ``sobol*``/``uq*`` → UQ and SA, ``verification*``/``gci*``, ``validation*``,
        ``result*``; others in an appendix).
    endpoints : sequence of str, optional
        Float endpoints for the results tables.
    events : mapping, optional
        The model's declared events (:class:`models.Event`), tabulated as shares.
    subgroups : sequence of mapping
        The config's ``report.subgroups`` (label, variable, edges/labels, source).
    answer : mapping, optional
        The answer up front (:func:`credibility.answer.answer_tables`): ``question`` (the
        config's ``report.question``), ``by_arm``, ``paired`` (DataFrames) and ``figure``
        (PNG path or None).
    calibration : mapping, optional
        The calibrate stage's ``summary`` (calibration.json), ``fit`` and ``loso`` tables.
    certificate : mapping, optional
        The cohort's calibration certificates: ``summary`` (certificate/summary.json),
        ``tables`` and ``figures`` by population name (:func:`.population.certificate`).
    populations : mapping, optional
        The question answered for each population
        (:func:`credibility.populations.population_answers`).
    sizing : mapping, optional
        The simulate stage's ``sizing/sizing.json`` of a sequentially sized trial.
    planning : pandas.DataFrame, optional
        The real trial's size (:func:`credibility.planning.planning_table`).
    conf : float, default 0.95
        Confidence level of all intervals.

    Returns
    -------
    dict
        Template context for :func:`credibility.report.render_report`.

    Raises
    ------
    ReportError
        If ``trial`` has no ``name``.
    credibility.tables.TableError
        If a requested endpoint is not in ``outcomes``.
    """
    plan = parts.get("plan")
    if plan is not None and not isinstance(plan, Plan):
        plan = parts["plan"] = Plan(data=dict(plan))
    if assessment is None and plan is not None and evidence is not None:
        assessment = assess(plan, evidence)
    partial = start_context(**parts)  # every other keyword, as start_context takes it
    return finish_context(partial, assessment=assessment, evidence=evidence, manifest=manifest)


@dataclass
class PartialContext:
    """The sections :func:`start_context` computed, waiting for the evidence."""

    ctx: dict[str, Any]
    page: sections.Page
    figures: Mapping[str, str | Path]
    model_card: Mapping[str, Any] | None
    gaps: dict[str, Any]


def start_context(
    *,
    trial: Mapping[str, Any],
    cohort: xr.Dataset | None = None,
    outcomes: xr.Dataset | None = None,
    cohort_check: pd.DataFrame | None = None,
    verification: Mapping[str, Any] | None = None,
    validation: pd.DataFrame | None = None,
    applicability: pd.DataFrame | None = None,
    uq: xr.Dataset | None = None,
    sa: xr.Dataset | None = None,
    plan: Plan | Mapping[str, Any] | None = None,
    model_card: Mapping[str, Any] | None = None,
    figures: Mapping[str, str | Path] | None = None,
    endpoints: Sequence[str] | None = None,
    events: Mapping[str, Any] | None = None,
    subgroups: Sequence[Mapping[str, Any]] = (),
    answer: Mapping[str, Any] | None = None,
    calibration: Mapping[str, Any] | None = None,
    certificate: Mapping[str, Any] | None = None,
    populations: Mapping[str, Any] | None = None,
    sizing: Mapping[str, Any] | None = None,
    planning: pd.DataFrame | None = None,
    conf: float = 0.95,
) -> PartialContext:
    """Every section of :func:`build_context` that needs neither the evidence, its
    assessment nor the manifest (all the tables and figures of the results): the report
    stage computes them while its separate re-run, part of the evidence, still runs.
    :func:`finish_context` adds the rest. Parameters as :func:`build_context`."""
    if "name" not in trial:
        raise ReportError("trial metadata: key 'name' is required")
    if plan is not None and not isinstance(plan, Plan):
        plan = Plan(data=dict(plan))
    page = sections.Page()
    tabulated = {"endpoints": endpoints, "events": events, "conf": conf}
    # one entry per section, evaluated in this order (the order of the notes); the
    # assessment's entry, first in the report, is computed by finish_context
    ctx: dict[str, Any] = {
        "trial": dict(trial),
        "generated_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "conf_pct": f"{100 * conf:g}",
        "not_computed": NOT_COMPUTED,
        "plan": sections.question(plan),
        "model": sections.model(model_card),
        "verification": sections.verification(verification, plan, page),
        "answer": sections.answer(answer),
        "populations": population.populations(populations),
        "sizing": sizing_sections.sizing(sizing),
        "planning": sizing_sections.planning(planning),
        "certificate": population.certificate(**certificate) if certificate else None,
        "calibration": sections.calibration(calibration),
        "validation": sections.validation(validation, plan, page),
        "applicability": sections.applicability(applicability),
        "uq": sections.uq_sa(uq),
        "sa": sections.uq_sa(sa),
        "results": sections.results(outcomes, cohort, plan, page, **tabulated),
        "failures": sections.failures(outcomes),
        "subgroups": sections.subgroups(
            cohort, outcomes, cohort_check, page, subgroups=subgroups, **tabulated
        ),
    }
    gaps = {
        "uncertainty quantification": uq,
        "sensitivity analysis": sa,
        "calculation verification": verification,
        "validation against clinical comparators": validation,
        "cohort applicability check": applicability,
    }
    return PartialContext(ctx, page, figures or {}, model_card, gaps)


def finish_context(
    partial: PartialContext,
    *,
    assessment: pd.DataFrame | None = None,
    evidence: Mapping[str, Any] | None = None,
    manifest: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The template context: :func:`start_context`'s sections with the assessment, the
    provenance, the extra figures and the limitations (what :func:`build_context` returns)."""
    first = sections.Page()  # the assessment's figure and note come before all others
    ctx = {"assessment": sections.assessment(assessment, first), **partial.ctx}
    page = sections.Page(
        figures={**first.figures, **partial.page.figures}, notes=first.notes + partial.page.notes
    )
    ctx.update(sections.provenance(manifest, evidence))
    sections.extra_figures(partial.figures, page)
    ctx["limitations"] = sections.limitations(partial.model_card, partial.gaps, page)
    ctx["notes"], ctx["figures"] = page.notes, page.figures
    return {k: v for k, v in ctx.items() if v is not None}
