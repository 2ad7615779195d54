"""Credibility report: tables from the trial's Datasets and a self-contained HTML (and PDF).

The report follows the reporting structure of the FDA guidance *Assessing the Credibility of
Computational Modeling and Simulation in Medical Device Submissions* (2023): summary, question
of interest and context of use with model risk, model description, verification, validation,
uncertainty quantification and sensitivity analysis, results (by arm and subgroup), failures,
limitations, and the goal-vs-achieved table of the 13 ASME V&V 40 credibility factors.

The integrator calls :func:`build_context` with whatever the run produced (every piece but the
trial metadata is optional: a missing piece renders as "not computed in this run"), then
:func:`render_report`. :func:`collect_evidence` assembles the evidence dict that
:func:`credibility.plan.assess` checks against the plan's goals.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
import xarray as xr

from credibility import figures as _fig
from credibility.errors import CredibilityError
from credibility.plan import Plan, assess
from credibility.tables import (
    arm_differences,
    endpoint_names,
    failure_table,
    outcome_evidence,
    representation_table,
    results_by_arm,
    subgroup_table,
)
from credibility.validation import applicability_summary, validation_summary

__all__ = [
    "ReportError",
    "build_context",
    "collect_evidence",
    "render_report",
]

TEMPLATES = Path(__file__).with_name("templates")
NOT_COMPUTED = "Not computed in this run."


class ReportError(CredibilityError):
    """The report cannot be built (missing variable, missing template, PDF engine absent)."""


def _uq_n_inputs(uq: xr.Dataset) -> int | None:
    for key in ("n_inputs", "n_uncertain_inputs"):
        if key in uq.attrs:
            return int(uq.attrs[key])
    for key in ("inputs", "uncertain_inputs"):
        if key in uq.attrs:
            return len(np.atleast_1d(uq.attrs[key]))
    problem = uq.attrs.get("problem")
    if isinstance(problem, str) and "~" in problem:
        # credibility.uq records the problem as "name~dist(...); name~dist(...)"
        return sum("~" in part for part in problem.split(";"))
    for dim in ("input", "parameter", "inputs", "parameters"):
        if dim in uq.sizes:
            return int(uq.sizes[dim])
    return None


def collect_evidence(
    *,
    verification: Mapping[str, Any] | None = None,
    code_verification: Mapping[str, Any] | None = None,
    validation: pd.DataFrame | None = None,
    applicability: pd.DataFrame | None = None,
    outcomes: xr.Dataset | None = None,
    model_card: Mapping[str, Any] | None = None,
    uq: xr.Dataset | None = None,
    stage_chain: Sequence[Mapping[str, Any]] | None = None,
    reproducibility: Mapping[str, Any] | None = None,
    calibration: Mapping[str, Any] | None = None,
    quantities_of_interest: Sequence[str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble the evidence dict addressed by a plan's dotted ``evidence`` keys.

    Keys produced (absent when the piece is None): ``verification.*`` (the dict given, e.g.
    ``GCIResult.summary()``: ``gci_max_pct``, …), ``code_verification.*``,
    ``validation.*`` (:func:`~credibility.validation.validation_summary`),
    ``applicability.*`` (:func:`~credibility.validation.applicability_summary`),
    ``simulation.*`` (:func:`outcome_evidence`), ``model_card.n_assumptions`` /
    ``n_limitations`` / ``n_references``, ``uq.n_uncertain_inputs`` (from the UQ Dataset's
    ``n_inputs``/``inputs``/``problem`` attrs or an ``input``/``parameter`` dim),
    ``provenance.stage_chain_mismatches`` (number of broken links of the stage chain; the
    links themselves under ``provenance.stage_chain``), ``reproducibility.*`` (the re-run
    evidence given: ``resimulation_match``, ``patients_checked``, ``n_differences``, …, and
    the rows ``reproducibility.differences``), ``calibration.*`` (the calibrate stage's
    summary: ``leave_one_study_out.rms_z``, ``model_forms.model_to_best_rms_z_ratio``,
    ``effective_sample_size``, the fit counts). ``extra`` is merged last (nested dicts are
    merged key by key).

    Parameters
    ----------
    stage_chain : sequence of mapping, optional
        Broken links of the stage chain, one mapping per file (``reader``, ``writer``,
        ``path``, ``kind``, ``expected``, ``actual``; e.g.
        ``isct.provenance.ChainMismatch.to_dict()``); empty when every link holds.
    reproducibility : mapping, optional
        Evidence of the independent re-run; must hold ``resimulation_match`` (bool).
    calibration : mapping, optional
        ``calibration.json`` of the calibrate stage (``enabled`` false: no evidence).

    Returns
    -------
    dict
        Nested evidence: JSON-friendly scalars addressed by the plan, and the lists of
        broken links and re-run differences behind them.

    Raises
    ------
    ReportError
        If ``reproducibility`` has no ``resimulation_match``.
    """
    ev: dict[str, Any] = {}
    if calibration is not None and calibration.get("enabled"):
        forms = calibration.get("model_forms", {})
        ev["calibration"] = {
            "leave_one_study_out": dict(calibration.get("leave_one_study_out", {})),
            "model_forms": {
                "model_to_best_rms_z_ratio": forms.get("model_to_best_rms_z_ratio"),
                "best": forms.get("best"),
            },
            "effective_sample_size": calibration.get("effective_sample_size"),
            "fit_consistent": calibration.get("fit", {}).get("consistent"),
            "fit_rows": calibration.get("fit", {}).get("rows"),
        }
    if verification is not None:
        ev["verification"] = {
            k: v for k, v in verification.items() if not isinstance(v, pd.DataFrame | Mapping)
        }
    if code_verification is not None:
        ev["code_verification"] = dict(code_verification)
    if validation is not None:
        ev["validation"] = validation_summary(validation, list(quantities_of_interest or []))
    if applicability is not None:
        ev["applicability"] = applicability_summary(applicability)
    if outcomes is not None:
        ev["simulation"] = outcome_evidence(outcomes)
    if model_card is not None:
        ev["model_card"] = {
            f"n_{k}": len(model_card.get(k) or [])
            for k in ("assumptions", "limitations", "references")
        }
    if uq is not None:
        n = _uq_n_inputs(uq)
        ev["uq"] = {"n_uncertain_inputs": n} if n is not None else {}
    if stage_chain is not None:
        ev["provenance"] = {
            "stage_chain_mismatches": len(stage_chain),
            "stage_chain": [dict(link) for link in stage_chain],
        }
    if reproducibility is not None:
        if "resimulation_match" not in reproducibility:
            raise ReportError(
                "reproducibility evidence: key 'resimulation_match' (bool) is required; "
                f"got keys {sorted(reproducibility)}"
            )
        ev["reproducibility"] = {
            **reproducibility,
            "resimulation_match": bool(reproducibility["resimulation_match"]),
        }
    for key, value in (extra or {}).items():
        if isinstance(value, Mapping) and isinstance(ev.get(key), dict):
            ev[key] = {**ev[key], **value}
        else:
            ev[key] = value
    return ev


# ---------------------------------------------------------------------------- HTML helpers


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool | np.bool_):
        return "yes" if v else "no"
    if isinstance(v, float | np.floating):
        if not np.isfinite(v):
            return "—"
        return f"{v:.4g}"
    return str(v)


def _table(df: pd.DataFrame | None, *, table_id: str | None = None, index: bool = False) -> str:
    """HTML of a DataFrame (escaped, compact number format), or '' for None/empty."""
    if df is None or len(df) == 0:
        return ""
    html = df.to_html(
        index=index,
        escape=True,
        na_rep="—",
        border=0,
        classes="data",
        table_id=table_id,
        formatters={
            c: _fmt for c in df.columns if df[c].dtype == object or df[c].dtype.kind == "f"
        },
    )
    return html


def _by_arm_wide(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One row per ``keys`` combination, one ``"estimate (low–high)"`` and ``n`` column per arm."""
    est = [
        "—" if not np.isfinite(e) else f"{e:.4g} ({lo:.4g}–{hi:.4g})"
        for e, lo, hi in zip(df["estimate"], df["ci_low"], df["ci_high"], strict=True)
    ]
    long = df.assign(value=est)
    wide = long.pivot_table(
        index=keys, columns="arm", values=["value", "n"], aggfunc="first", sort=False
    )
    arms = list(dict.fromkeys(df["arm"]))
    wide = wide.reindex(columns=[(v, a) for a in arms for v in ("n", "value")])
    wide.columns = [f"{a}: n" if v == "n" else f"{a}: estimate (CI)" for v, a in wide.columns]
    return wide.reset_index()


def _kv_table(items: Mapping[str, Any], *, table_id: str | None = None) -> str:
    if not items:
        return ""
    return _table(
        pd.DataFrame({"item": list(items), "value": [_fmt(v) for v in items.values()]}),
        table_id=table_id,
    )


def _flatten(d: Mapping[str, Any], prefix: str = "") -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a nested dict into dotted scalar items and tables (DataFrames / lists of dicts)."""
    scalars: dict[str, Any] = {}
    tables: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, pd.DataFrame):
            tables[key] = v
        elif isinstance(v, list) and v and all(isinstance(i, Mapping) for i in v):
            tables[key] = pd.DataFrame(v)
        elif (
            isinstance(v, Mapping)
            and v
            and all(isinstance(i, Mapping) for i in v.values())
            and all(not isinstance(x, Mapping) for i in v.values() for x in i.values())
        ):
            # {name: {column: scalar}}, e.g. per-endpoint verification results
            tables[key] = pd.DataFrame.from_dict(dict(v), orient="index")
        elif isinstance(v, Mapping):
            s, t = _flatten(v, f"{key}.")
            scalars.update(s)
            tables.update(t)
        elif isinstance(v, list | tuple):
            scalars[key] = ", ".join(_fmt(i) for i in v)
        else:
            scalars[key] = v
    return scalars, tables


def _dataset_tables(ds: xr.Dataset, *, max_rows: int = 200) -> list[dict[str, str]]:
    """Tables of a small result Dataset (UQ, SA): variables grouped by their dims."""
    out = []
    groups: dict[tuple[str, ...], list[str]] = {}
    for name, var in ds.data_vars.items():
        groups.setdefault(tuple(var.dims), []).append(str(name))
    summary = []
    for dims, names in groups.items():
        size = int(np.prod([ds.sizes[d] for d in dims])) if dims else 1
        if len(dims) <= 3 and size <= max_rows:
            frame = (
                ds[names].to_dataframe().reset_index()
                if dims
                else pd.DataFrame({n: [ds[n].item()] for n in names})
            )
            caption = ", ".join(
                f"{n} [{ds[n].attrs['units']}]" if "units" in ds[n].attrs else n for n in names
            )
            out.append({"caption": f"{caption} by ({', '.join(dims)})", "html": _table(frame)})
        else:
            for n in names:
                values = np.asarray(ds[n].values)
                finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
                summary.append(
                    {
                        "variable": n,
                        "dims": ", ".join(dims),
                        "shape": "×".join(str(ds.sizes[d]) for d in dims),
                        "units": ds[n].attrs.get("units", ""),
                        "min": finite.min() if finite.size else np.nan,
                        "max": finite.max() if finite.size else np.nan,
                    }
                )
    if summary:
        out.append({"caption": "Large variables (summary)", "html": _table(pd.DataFrame(summary))})
    return out


def _normalise_io(spec: Any) -> pd.DataFrame | None:
    """Model-card inputs/outputs (dict name -> attrs, or list of dicts) as a table."""
    if not spec:
        return None
    if isinstance(spec, Mapping):
        rows = [
            {"name": k, **(v if isinstance(v, Mapping) else {"description": v})}
            for k, v in spec.items()
        ]
    else:
        rows = [dict(v) if isinstance(v, Mapping) else {"name": str(v)} for v in spec]
    frame = pd.DataFrame(rows)
    if "unit" in frame and "units" not in frame:
        frame = frame.rename(columns={"unit": "units"})
    first = [c for c in ("name", "units", "description", "bounds") if c in frame]
    return frame[first + [c for c in frame.columns if c not in first]].map(
        lambda v: ", ".join(map(str, v)) if isinstance(v, list | tuple) else v
    )


def _as_text_list(items: Any) -> list[str]:
    if not items:
        return []
    if isinstance(items, str):
        return [items]
    out = []
    for i in items:
        if isinstance(i, Mapping):
            out.append("; ".join(f"{k}: {v}" for k, v in i.items()))
        else:
            out.append(str(i))
    return out


def _figure_section(key: str) -> str:
    k = key.lower()
    for prefix, section in (
        ("cohort", "subgroups"),
        ("subgroup", "subgroups"),
        ("sa", "uq_sa"),
        ("sensitivity", "uq_sa"),
        ("sobol", "uq_sa"),
        ("uq", "uq_sa"),
        ("verification", "verification"),
        ("gci", "verification"),
        ("validation", "validation"),
        ("result", "results"),
        ("failure", "failures"),
    ):
        if k.startswith(prefix):
            return section
    return "appendix"


#: Titles of the report sections by HTML id (as numbered in the template).
_SECTION_TITLES = {
    "verification": "§4 Verification",
    "validation": "§5 Validation",
    "uq-sa": "§6 UQ and SA",
    "results": "§7 Results",
    "subgroups": "§8 Subgroups",
    "failures": "§9 Failures",
    "provenance": "§12 Provenance",
}
#: HTML section id of each figure section (the appendix lives in the provenance section).
_SECTION_IDS = {
    "subgroups": "subgroups",
    "uq_sa": "uq-sa",
    "verification": "verification",
    "validation": "validation",
    "results": "results",
    "failures": "failures",
    "appendix": "provenance",
}


def _chain_and_rerun(evidence: Mapping[str, Any]) -> dict[str, Any]:
    """Report pieces of the stage chain and the independent re-run (provenance section)."""
    out: dict[str, Any] = {}
    links = (evidence.get("provenance") or {}).get("stage_chain")
    if links is not None:
        cols = ["reader", "writer", "path", "kind", "expected", "actual"]
        frame = pd.DataFrame(list(links), columns=cols)
        for c in ("expected", "actual"):  # SHA-256 prefixes are enough to tell them apart
            frame[c] = frame[c].map(lambda h: f"{h[:12]}…" if isinstance(h, str) else h)
        out["stage_chain"] = {"n": len(frame), "table": _table(frame, table_id="stage-chain")}
    rerun = evidence.get("reproducibility")
    if rerun:
        items = {k: v for k, v in rerun.items() if k not in ("differences", "arms", "patients")}
        items["arms"] = ", ".join(map(str, rerun.get("arms") or [])) or "—"
        items["patients"] = ", ".join(map(str, rerun.get("patients") or [])) or "—"
        diffs = pd.DataFrame(list(rerun.get("differences") or []))
        for c in ("stored", "resimulated"):  # every digit: the comparison is bit for bit
            if c in diffs:
                diffs[c] = diffs[c].map(repr)
        out["rerun"] = {
            "summary": _kv_table(items, table_id="rerun-items"),
            "differences": _table(diffs, table_id="rerun-differences"),
        }
    return out


# ------------------------------------------------------------------------------- context


def build_context(
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
    assessment: pd.DataFrame | None = None,
    evidence: Mapping[str, Any] | None = None,
    model_card: Mapping[str, Any] | None = None,
    manifest: Mapping[str, Any] | None = None,
    figures: Mapping[str, str | Path] | None = None,
    endpoints: Sequence[str] | None = None,
    events: Mapping[str, Any] | None = None,
    subgroups: Sequence[Mapping[str, Any]] = (),
    answer: Mapping[str, Any] | None = None,
    calibration: Mapping[str, Any] | None = None,
    conf: float = 0.95,
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
        :func:`credibility.validation.applicability` output.
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
    conf : float, default 0.95
        Confidence level of all intervals.

    Returns
    -------
    dict
        Template context for :func:`render_report`.

    Raises
    ------
    ReportError
        If ``trial`` has no ``name`` or a requested endpoint is not in ``outcomes``.
    """
    if "name" not in trial:
        raise ReportError("trial metadata: key 'name' is required")
    if plan is not None and not isinstance(plan, Plan):
        plan = Plan(data=dict(plan))
    notes: list[str] = []
    figs: dict[str, list[dict[str, str]]] = {}

    def add_fig(section: str, title: str, uri: str) -> None:
        figs.setdefault(section, []).append({"title": title, "uri": uri})

    ctx: dict[str, Any] = {
        "trial": dict(trial),
        "generated_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "conf_pct": f"{100 * conf:g}",
        "not_computed": NOT_COMPUTED,
    }

    # --- plan, risk, assessment
    if assessment is None and plan is not None and evidence is not None:
        assessment = assess(plan, evidence)
    if plan is not None:
        ctx["plan"] = {
            "name": plan.get("name"),
            "source": plan.source,
            "question_of_interest": plan.get("question_of_interest"),
            "context_of_use": plan.get("context_of_use"),
            "model_influence": plan.get("model_influence"),
            "model_influence_rationale": plan.get("model_influence_rationale", ""),
            "decision_consequence": plan.get("decision_consequence"),
            "decision_consequence_rationale": plan.get("decision_consequence_rationale", ""),
            "model_risk": plan.model_risk,
            "quantities_of_interest": _table(
                pd.DataFrame(plan.get("quantities_of_interest") or [])
            ),
            "references": _as_text_list(plan.get("references")),
        }
    if assessment is not None:
        rows = []
        for r in assessment.to_dict("records"):
            rows.append(
                {
                    "factor": str(r["factor"]).replace("_", " "),
                    "activity": r["activity"],
                    "grade": r["grade"],
                    "goal": r["goal"],
                    "partial_band": r["partial_band"] or "—",
                    "evidence": r["evidence"],
                    "achieved": _fmt(r["achieved"]),
                    "status": r["status"],
                    "rationale": r.get("rationale", ""),
                    "link": _SECTION_IDS[_figure_section(r["figure"])] if r.get("figure") else "",
                    "link_title": _SECTION_TITLES[_SECTION_IDS[_figure_section(r["figure"])]]
                    if r.get("figure")
                    else "",
                }
            )
        counts = assessment["status"].value_counts()
        unmet = assessment[assessment["status"] != "pass"]
        ctx["assessment"] = {
            "rows": rows,
            "unmet": [
                f"{f.replace('_', ' ')} ({st})"
                for f, st in zip(unmet["factor"], unmet["status"], strict=True)
            ],
            "counts": {s: int(counts.get(s, 0)) for s in ("pass", "partial", "fail", "missing")},
        }
        add_fig(
            "assessment",
            "Status per credibility factor",
            _fig.fig_to_data_uri(_fig.goal_status_chart(assessment)),
        )
        missing = assessment.loc[assessment["status"] == "missing", "factor"].tolist()
        if missing:
            notes.append(
                "No evidence was computed for: " + ", ".join(m.replace("_", " ") for m in missing)
            )

    # --- model card
    if model_card is not None:
        ctx["model"] = {
            "name": model_card.get("name", "—"),
            "version": model_card.get("version", "—"),
            "description": model_card.get("description", ""),
            "context_of_use": model_card.get("context_of_use", ""),
            "inputs": _table(_normalise_io(model_card.get("inputs"))),
            "outputs": _table(_normalise_io(model_card.get("outputs"))),
            "assumptions": _as_text_list(model_card.get("assumptions")),
            "limitations": _as_text_list(model_card.get("limitations")),
            "references": _as_text_list(model_card.get("references")),
            "post_validation_changes": _table(
                pd.DataFrame(model_card.get("post_validation_changes") or [])
            ),
            "calibration_parameters": _table(
                pd.DataFrame.from_dict(model_card["calibration_parameters"], orient="index")
                .rename_axis("parameter")
                .reset_index()
                if model_card.get("calibration_parameters")
                else None
            ),
        }

    # --- verification
    if verification is not None:
        scalars, tables = _flatten(verification)
        ctx["verification"] = {
            "items": _kv_table(scalars, table_id="verification-items"),
            "tables": [{"caption": k, "html": _table(v, index=True)} for k, v in tables.items()],
        }
        goal = None
        if plan is not None:
            crit = plan.factors["discretization_error"]["goal"]
            goal = crit.get("max")
        for k, v in tables.items():
            if "gci_fine_pct" in v:
                add_fig(
                    "verification",
                    f"Fine-grid GCI ({k})",
                    _fig.fig_to_data_uri(_fig.gci_bars(v, goal_pct=goal)),
                )

    # --- the answer up front
    if answer is not None and answer.get("by_arm") is not None and len(answer["by_arm"]):
        question = answer["question"]
        ctx["answer"] = {
            "subgroup": question["subgroup"],
            "by_arm": _table(
                _by_arm_wide(answer["by_arm"], ["endpoint", "unit"]), table_id="answer-by-arm"
            ),
            "paired": _table(answer["paired"], table_id="answer-paired"),
            "sources": [p for p in question.get("proportions", []) if p.get("source")],
        }
        if answer.get("figure") is not None and Path(answer["figure"]).is_file():
            ctx["answer"]["figure"] = _fig.png_to_data_uri(answer["figure"])

    # --- calibration (fitted data, kept apart from validation)
    if calibration is not None and calibration.get("summary", {}).get("enabled"):
        summary = calibration["summary"]
        params = pd.DataFrame.from_dict(summary["parameters"], orient="index")
        params.index.name = "parameter"
        forms = pd.DataFrame.from_dict(summary["model_forms"]["forms"], orient="index")
        forms.index.name = "model form"
        fit = calibration.get("fit")
        fit_cols = ["id", "study", "quantity", "statistic", "arm", "observed", "predicted",
                    "predicted_low", "predicted_high", "emulated", "E", "u_val", "verdict"]  # fmt: skip
        ctx["calibration"] = {
            "method": summary["method"],
            "comparators": summary["comparators"],
            "parameters": _table(params.reset_index(), table_id="calibration-parameters"),
            "fit": _table(fit[[c for c in fit_cols if c in fit]] if fit is not None else None),
            "loso": _table(calibration.get("loso")),
            "loso_summary": _kv_table(summary["leave_one_study_out"]),
            "forms": _table(forms.drop(columns=["settings"]).reset_index()),
            "best_form": summary["model_forms"]["best"],
            "patients": summary["patients"],
            "design_points": summary["design_points"],
            "ess": summary["effective_sample_size"],
        }

    # --- validation and applicability
    if validation is not None and len(validation):
        cols = [
            "id", "study", "quantity", "statistic", "arm", "size_mm", "where", "timepoint_days",
            "unit", "observed", "observed_low", "observed_high", "predicted", "predicted_low",
            "predicted_high", "n_virtual", "E", "u_val", "verdict", "observed_sd",
            "predicted_sd", "sd_verdict", "area_metric",
        ]  # fmt: skip
        shown = validation[[c for c in cols if c in validation]]
        ctx["validation"] = {
            "table": _table(shown, table_id="validation-table"),
            "sources": _table(
                validation[["id", "citation", "note"]].drop_duplicates(),
                table_id="validation-sources",
            ),
            "summary": _kv_table(
                validation_summary(
                    validation,
                    [q.get("name") for q in (plan.get("quantities_of_interest") or [])]
                    if plan
                    else None,
                )
            ),
        }
        add_fig(
            "validation",
            "Virtual trial vs clinical comparators",
            _fig.fig_to_data_uri(_fig.validation_forest(validation)),
        )
        excluded = validation[validation["verdict"] == "excluded"]
        if len(excluded):
            ctx["validation"]["excluded"] = _table(
                excluded[["id", "study", "timepoint_days", "note"]], table_id="validation-excluded"
            )
        no_ud = int((validation["u_D"] == 0).sum())
        if no_ud:
            notes.append(
                f"{no_ud} of {len(validation)} comparators report no uncertainty; their u_D was "
                "taken as 0, which makes the V&V 20 verdict strict."
            )
    if applicability is not None and len(applicability):
        app_cols = [c for c in applicability.columns if c != "citation"]
        ctx["applicability"] = {
            "table": _table(applicability[app_cols], table_id="applicability-table"),
            "sources": _table(
                applicability[["characteristic", "citation"]]
                if "citation" in applicability
                else None
            ),
            "summary": _kv_table(applicability_summary(applicability)),
        }

    # --- UQ and SA
    for key, ds in (("uq", uq), ("sa", sa)):
        if ds is not None:
            ctx[key] = {
                "attrs": _kv_table({k: v for k, v in ds.attrs.items()}),
                "tables": _dataset_tables(ds),
            }

    # --- results, failures, subgroups
    if outcomes is not None:
        by_arm = results_by_arm(outcomes, cohort, endpoints=endpoints, events=events, conf=conf)
        diffs = arm_differences(outcomes, cohort, endpoints=endpoints, events=events, conf=conf)
        eps = endpoint_names(outcomes, endpoints)
        counts, failing = failure_table(outcomes)
        qoi = [q.get("name") for q in (plan.get("quantities_of_interest") or [])] if plan else []
        head_eps = [e for e in qoi if e in eps] or eps[:2]
        head_eps += [e.label for e in (events or {}).values() if e.quantity in outcomes][:2]
        headline = by_arm[by_arm["endpoint"].isin(head_eps)]
        ctx["results"] = {
            "headline": _table(
                _by_arm_wide(headline, ["endpoint", "unit"]) if len(headline) else None,
                table_id="headline",
            ),
            "by_arm": _table(by_arm, table_id="results-by-arm"),
            "differences": _table(diffs, table_id="arm-differences"),
            "n_patients": int(outcomes.sizes["patient"]),
            "arms": [str(a) for a in outcomes["arm"].values],
        }
        ctx["failures"] = {
            "counts": _table(counts, table_id="status-counts"),
            "failing": _table(failing, table_id="failing-patients"),
            "evidence": outcome_evidence(outcomes),
        }
        if eps:
            add_fig(
                "results",
                "Endpoint distributions by arm",
                _fig.fig_to_data_uri(_fig.endpoint_distributions(outcomes, eps)),
            )
        if cohort is not None:
            sub = subgroup_table(
                cohort, outcomes, subgroups, endpoints=eps[:2], events=events, conf=conf
            )
            ctx["subgroups"] = {
                "table": _table(
                    _by_arm_wide(sub, ["subgroup", "level", "endpoint", "unit"])
                    if len(sub)
                    else sub,
                    table_id="subgroup-table",
                )
            }
            if len(sub):
                ep = sub["endpoint"].iloc[0]
                add_fig(
                    "subgroups",
                    f"{ep} by subgroup and arm",
                    _fig.fig_to_data_uri(_fig.subgroup_forest(sub, ep)),
                )
    if cohort is not None:
        ctx.setdefault("subgroups", {})["representation"] = _table(
            representation_table(cohort, subgroups), table_id="representation-table"
        )
    if cohort_check is not None and len(cohort_check):
        ctx.setdefault("subgroups", {})["cohort_check"] = _table(
            cohort_check, table_id="cohort-check"
        )

    # --- provenance
    if manifest is not None:
        hashed = []
        for group in ("config", "inputs", "outputs"):
            entries = {"config": manifest[group]} if group == "config" else manifest.get(group, {})
            for name, e in entries.items():
                hashed.append(
                    {
                        "entry": name if group == "config" else f"{group}.{name}",
                        "path": e.get("path"),
                        "kind": e.get("kind"),
                        "files": len(e.get("files", {})) if e.get("kind") == "dir" else 1,
                        "sha256": str(e.get("sha256", ""))[:16] + "…",
                    }
                )
        ctx["manifest"] = {
            "general": _kv_table(
                {
                    "trial": manifest.get("trial"),
                    "created (UTC)": manifest.get("created_utc"),
                    "git commit": (manifest.get("git") or {}).get("commit"),
                    "uncommitted changes": (manifest.get("git") or {}).get("dirty"),
                    **{f"seed {k}": v for k, v in (manifest.get("seeds") or {}).items()},
                    **{f"platform {k}": v for k, v in (manifest.get("platform") or {}).items()},
                }
            ),
            "packages": _kv_table(manifest.get("packages") or {}),
            "hashes": _table(pd.DataFrame(hashed)),
        }
    if evidence is not None:
        ctx["evidence"] = _kv_table(_flatten(evidence)[0], table_id="evidence-items")
        ctx.update(_chain_and_rerun(evidence))

    # --- extra figures
    for key, path in (figures or {}).items():
        try:
            uri = _fig.png_to_data_uri(path)
        except OSError:
            notes.append(f"Figure '{key}' could not be read from {path}.")
            continue
        add_fig(_figure_section(key), key.replace("_", " "), uri)

    # --- limitations: model card + computed gaps
    limits = list(ctx.get("model", {}).get("limitations", []))
    for label, piece in (
        ("uncertainty quantification", uq),
        ("sensitivity analysis", sa),
        ("calculation verification", verification),
        ("validation against clinical comparators", validation),
        ("cohort applicability check", applicability),
    ):
        if piece is None:
            notes.append(f"The {label} was not computed in this run.")
    ctx["limitations"] = limits
    ctx["notes"] = notes
    ctx["figures"] = figs
    return ctx


def render_report(out_html: str | Path, *, context: Mapping[str, Any], pdf: bool = False) -> Path:
    """Write the credibility report as one self-contained HTML file (and optionally a PDF).

    CSS is inlined and every figure is a base64 PNG ``data:`` URI, so the file can be mailed
    or archived alone. The PDF (``out_html`` with suffix ``.pdf``) is produced by WeasyPrint.

    Parameters
    ----------
    out_html : str or Path
        Output path; parent directories are created.
    context : mapping
        Output of :func:`build_context`.
    pdf : bool, default False
        Also write a PDF next to the HTML.

    Returns
    -------
    Path
        The HTML file.

    Raises
    ------
    ReportError
        If the template is missing or WeasyPrint is unavailable when ``pdf=True``.
    """
    out = Path(out_html)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    try:
        template = env.get_template("report.html.j2")
        css = (TEMPLATES / "report.css").read_text(encoding="utf-8")
    except (jinja2.TemplateNotFound, OSError) as exc:
        raise ReportError(f"report template missing in {TEMPLATES}: {exc}") from exc
    html = template.render(ctx=context, css=css, status_colours=_fig.STATUS_COLOURS)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    if pdf:
        try:
            import weasyprint
        except ImportError as exc:  # pragma: no cover - weasyprint is a declared dependency
            raise ReportError("pdf=True needs the 'weasyprint' package") from exc
        weasyprint.HTML(string=html, base_url=str(out.parent)).write_pdf(out.with_suffix(".pdf"))
    return out
