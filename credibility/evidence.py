"""The evidence vocabulary: every item of evidence a credibility plan may name, and how it is built.

A plan's factors name their evidence by dotted keys (``verification.gci_max_pct``) into a
nested evidence dict that the workflow computes — never typed in. :data:`EVIDENCE_KEYS` is the
one list of those keys: what each means, its unit or type, and the workflow stage whose
output it is computed from. :func:`collect_evidence` builds the dict from the stages' results
and produces only listed keys; :func:`credibility.plan.load_plan` refuses a plan naming an
unlisted one. :func:`lookup_evidence` reads a key, :func:`dump_evidence` /
:func:`load_evidence` write and read the dict as JSON.

A key ending in ``.*`` is a group of model-defined detail (e.g. the errors and orders per
quantity of the model's own code verification): shown in the report's evidence appendix, but
a plan names only the exact keys.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .applicability import applicability_summary
from .errors import CredibilityError
from .tables import outcome_evidence
from .validation import validation_summary

__all__ = [
    "EVIDENCE_KEYS",
    "EvidenceError",
    "EvidenceKey",
    "closest_keys",
    "collect_evidence",
    "dotted_keys",
    "dump_evidence",
    "evidence_key",
    "load_evidence",
    "lookup_evidence",
    "unlisted_keys",
]


class EvidenceError(CredibilityError):
    """Evidence cannot be assembled, written or read; the message names the key or file."""


@dataclass(frozen=True)
class EvidenceKey:
    """One item of evidence.

    Attributes
    ----------
    key : str
        Dotted key into the evidence dict; a trailing ``.*`` marks a group of model-defined
        detail. A plan may name ``<group>.<name>`` of a group whose unit is ``model`` (the
        model's own checks); it is not computed, and so fails, if the model does not report it.
    unit : str
        Unit of a number (``%``, ``1``, ``count``…) or the type (``bool``, ``str``,
        ``table``: a list of rows, ``list``).
    stage : str
        Workflow stage whose output the value is computed from.
    meaning : str
        What the value says, and the function that computes it.
    """

    key: str
    unit: str
    stage: str
    meaning: str

    @property
    def scalar(self) -> bool:
        """True for a single value a plan's goal can be checked against."""
        return not self.key.endswith(".*") and self.unit not in ("table", "list")


#: Every evidence key, grouped by the piece of :func:`collect_evidence` that produces it.
EVIDENCE_KEYS: tuple[EvidenceKey, ...] = tuple(EvidenceKey(*row) for row in (
    # key                                                 unit/type  stage          meaning
    ("provenance.stage_chain_mismatches",                 "count",   "report",      "broken links of the stage chain: files a stage read that differ from what the stage that wrote them recorded"),
    ("provenance.stage_chain",                            "table",   "report",      "the broken links (reader, writer, path, kind, expected, actual)"),
    ("code_verification.formal_order",                    "1",       "credibility", "formal order of accuracy of the model's numerics (Model.code_verification)"),
    ("code_verification.observed_order",                  "1",       "credibility", "observed order of accuracy on the model's problem with a known solution (or one per quantity)"),
    ("code_verification.observed_order_median",           "1",       "credibility", "median observed order over the quantities the model checks"),
    ("code_verification.order_error_abs",                 "1",       "credibility", "|observed - formal| order on the finest pair"),
    ("code_verification.*",                               "model",   "credibility", "further values the model's code verification reports (its test problems' errors and orders); a plan may name one, code_verification.<name>, for a check that is the model's own"),
    ("verification.gci_max_pct",                          "%",       "credibility", "largest fine-grid Grid Convergence Index over the graded endpoints (GCIResult.summary)"),
    ("verification.gci_median_pct",                       "%",       "credibility", "median fine-grid GCI over the graded endpoints and patients"),
    ("verification.observed_order_median",                "1",       "credibility", "median observed order of the calculation verification study"),
    ("verification.observed_order_min",                   "1",       "credibility", "smallest finite observed order (GCIResult.summary)"),
    ("verification.monotonic_fraction",                   "1",       "credibility", "share of quantities converging monotonically or grid independent"),
    ("verification.n_quantities",                         "count",   "credibility", "quantities in the refinement study (GCIResult.summary)"),
    ("verification.formal_order",                         "1",       "credibility", "formal order the GCI's factor of safety is judged against"),
    ("verification.refinement",                           "1",       "credibility", "refinement ratio of the step-size study"),
    ("verification.safety_factor",                        "str",     "credibility", "factor-of-safety rule of the GCI"),
    ("verification.method",                               "str",     "credibility", "method and references of the calculation verification"),
    ("verification.note",                                 "str",     "credibility", "why no calculation verification was done (model without a step size)"),
    ("simulation.n_cells",                                "count",   "simulate",    "patient x arm simulations (outcome_evidence)"),
    ("simulation.ok_fraction",                            "1",       "simulate",    "share of simulations with status ok"),
    ("simulation.invalid_input_fraction",                 "1",       "simulate",    "share of simulations refused as invalid input"),
    ("simulation.solver_failure_fraction",                "1",       "simulate",    "share of simulations that failed in the solver or timed out"),
    ("reproducibility.resimulation_match",                "bool",    "report",      "a separate process re-simulated the sampled patients from the manifest alone, bit for bit equal"),
    ("reproducibility.patients_checked",                  "count",   "report",      "patients re-simulated"),
    ("reproducibility.arms_checked",                      "count",   "report",      "arms re-simulated"),
    ("reproducibility.n_differences",                     "count",   "report",      "stored values that differ from the re-simulation"),
    ("reproducibility.manifest_mismatches",               "count",   "report",      "files whose hash differs from the manifest"),
    ("reproducibility.returncode",                        "int",     "report",      "exit code of the re-run process"),
    ("reproducibility.method",                            "str",     "report",      "the re-run command"),
    ("reproducibility.error",                             "str",     "report",      "tail of the re-run's error output, when it failed (else null)"),
    ("reproducibility.refused",                           "str",     "report",      "why the installed model was not run (else null)"),
    ("reproducibility.patients",                          "list",    "report",      "ids of the re-simulated patients"),
    ("reproducibility.arms",                              "list",    "report",      "names of the re-simulated arms"),
    ("reproducibility.differences",                       "table",   "report",      "values that differ (patient, arm, output, stored, resimulated)"),
    ("model_card.n_assumptions",                          "count",   "report",      "assumptions the model card states"),
    ("model_card.n_limitations",                          "count",   "report",      "limitations the model card states"),
    ("model_card.n_references",                           "count",   "report",      "references the model card cites"),
    ("uq.n_uncertain_inputs",                             "count",   "uq",          "uncertain inputs propagated by the UQ stage"),
    ("calibration.leave_one_study_out.rms_z",             "1",       "calibrate",   "RMS z-score of each study predicted by a posterior fitted without it"),
    ("calibration.leave_one_study_out.mean_abs_error",    "quantity units", "calibrate", "mean |predicted - observed| of the left-out studies' rows"),
    ("calibration.leave_one_study_out.mean_abs_rel_error_pct", "%",  "calibrate",   "mean |relative error| of the left-out studies' rows"),
    ("calibration.model_forms.model_to_best_rms_z_ratio", "1",       "calibrate",   "leave-one-study-out RMS z of the model over that of the best alternative model form"),
    ("calibration.model_forms.best",                      "str",     "calibrate",   "model form with the smallest leave-one-study-out RMS z"),
    ("calibration.effective_sample_size",                 "count",   "calibrate",   "Kish effective sample size of the posterior's importance weights"),
    ("calibration.fit_consistent",                        "count",   "calibrate",   "calibration rows consistent with the model re-run at the estimate"),
    ("calibration.fit_rows",                              "count",   "calibrate",   "calibration rows fitted"),
    ("validation.n_comparators",                          "count",   "credibility", "validation rows compared (excluded rows not counted; validation_summary)"),
    ("validation.n_excluded",                             "count",   "credibility", "validation rows at time points the model does not predict"),
    ("validation.n_studies",                              "count",   "credibility", "distinct studies compared"),
    ("validation.n_patients",                             "count",   "credibility", "published patients behind the compared rows (largest n per study)"),
    ("validation.n_strata",                               "count",   "credibility", "distinct arm x size x where strata compared"),
    ("validation.fraction_consistent",                    "1",       "credibility", "share of predicted rows with |E| <= k u_val (ASME V&V 20)"),
    ("validation.fraction_spread_consistent",             "1",       "credibility", "share of rows with a published SD whose virtual SD is consistent"),
    ("validation.max_abs_rel_error_pct",                  "%",       "credibility", "largest |relative error| of the predictions"),
    ("validation.median_abs_rel_error_pct",               "%",       "credibility", "median |relative error| of the predictions"),
    ("validation.fraction_with_u_D",                      "1",       "credibility", "share of compared rows reporting an uncertainty"),
    ("validation.max_area_metric",                        "quantity units", "credibility", "largest area metric between predicted and published distributions"),
    ("validation.qoi_coverage",                           "1",       "credibility", "share of the quantities of interest with at least one predicted comparator"),
    ("cohort.matched",                                    "bool",    "cohort",      "the cohort was matched to a published baseline table (cohort.match)"),
    ("cohort.all_passed",                                 "bool",    "cohort",      "every figure of the matched baseline table inside its sampling interval (calibration certificate)"),
    ("cohort.fraction_passed",                            "1",       "cohort",      "share of the baseline table's figures inside their sampling intervals (certificate)"),
    ("cohort.n_targets",                                  "count",   "cohort",      "figures of the matched baseline table"),
    ("cohort.max_abs_smd",                                "1",       "cohort",      "largest |standardised difference| cohort vs the baseline table (certificate)"),
    ("cohort.kish_n",                                     "count",   "cohort",      "Kish effective sample size of the matched cohort"),
    ("applicability.max_abs_smd",                         "1",       "credibility", "largest |standardised mean difference| virtual cohort vs comparator populations (applicability_summary)"),
    ("applicability.min_fraction_within",                 "1",       "credibility", "smallest share of virtual patients inside a comparator population's range"),
    ("applicability.n_characteristics",                   "count",   "credibility", "characteristics assessed"),
    ("applicability.n_not_in_cohort",                     "count",   "credibility", "characteristics the cohort lacks"),
))  # fmt: skip

_BY_KEY = {k.key: k for k in EVIDENCE_KEYS}
_GROUPS = tuple(k.key[:-1] for k in EVIDENCE_KEYS if k.key.endswith(".*"))  # "prefix."


def evidence_key(key: str) -> EvidenceKey | None:
    """The :data:`EVIDENCE_KEYS` entry of a dotted key (its ``.*`` group for model detail)."""
    if key in _BY_KEY:
        return _BY_KEY[key]
    group = next((g for g in _GROUPS if key.startswith(g)), None)
    return _BY_KEY[group + "*"] if group else None


def closest_keys(key: str, n: int = 3) -> list[str]:
    """The listed keys a plan may name that are closest to ``key`` (for error messages)."""
    names = [k.key for k in EVIDENCE_KEYS if k.scalar]
    return difflib.get_close_matches(key, names, n=n, cutoff=0.5)


def dotted_keys(evidence: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The dotted keys of a nested evidence dict: its leaves, or the listed key above them.

    Examples
    --------
    >>> dotted_keys({"uq": {"n_uncertain_inputs": 3}, "provenance": {"stage_chain": []}})
    ['uq.n_uncertain_inputs', 'provenance.stage_chain']
    """
    keys = []
    for k, v in evidence.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and key not in _BY_KEY:
            keys += dotted_keys(v, f"{key}.")
        else:
            keys.append(key)
    return keys


def unlisted_keys(evidence: Mapping[str, Any]) -> list[str]:
    """The dotted keys of ``evidence`` that are not in :data:`EVIDENCE_KEYS`."""
    return [k for k in dotted_keys(evidence) if evidence_key(k) is None]


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
    cohort: Mapping[str, Any] | None = None,
    quantities_of_interest: Sequence[str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble the evidence dict addressed by a plan's dotted ``evidence`` keys.

    Every piece is optional; its keys (listed in :data:`EVIDENCE_KEYS`) are absent when it is
    None. ``verification`` (e.g. ``GCIResult.summary()``; tables in it are left out),
    ``code_verification`` (``Model.code_verification()``) and ``reproducibility`` are taken
    as given; ``validation`` and ``applicability`` tables are summarised
    (:func:`~credibility.validation.validation_summary`,
    :func:`~credibility.applicability.applicability_summary`), ``outcomes`` by
    :func:`~credibility.tables.outcome_evidence`, the model card by its counts of
    assumptions, limitations and references, the UQ Dataset by its number of uncertain
    inputs (``n_inputs``/``inputs``/``problem`` attrs or an ``input``/``parameter`` dim), the
    calibrate stage's summary by its leave-one-study-out and model-form figures. ``extra`` is
    merged last (nested dicts key by key).

    Parameters
    ----------
    stage_chain : sequence of mapping, optional
        Broken links of the stage chain, one mapping per file (``reader``, ``writer``,
        ``path``, ``kind``, ``expected``, ``actual``; e.g.
        ``isct.chain.ChainMismatch.to_dict()``); empty when every link holds.
    reproducibility : mapping, optional
        Evidence of the independent re-run; must hold ``resimulation_match`` (bool).
    calibration : mapping, optional
        ``calibration.json`` of the calibrate stage (``enabled`` false: no evidence).
    cohort : mapping, optional
        The cohort stage's certificate summary (``matched``; when matched ``n_targets``,
        ``n_passed``, ``all_passed``, ``max_abs_smd``, ``kish_n``).
    quantities_of_interest : sequence of str, optional
        Outcome variables the decision rests on (``validation.qoi_coverage``).

    Returns
    -------
    dict
        Nested evidence: JSON-friendly scalars addressed by the plan, and the lists of
        broken links and re-run differences behind them.

    Raises
    ------
    EvidenceError
        If ``reproducibility`` has no ``resimulation_match``, or a piece holds a key that is
        not in :data:`EVIDENCE_KEYS` (the message names it and the closest listed keys).
    """
    ev: dict[str, Any] = {}
    if cohort is not None:
        ev["cohort"] = {"matched": bool(cohort.get("matched"))}
        if cohort.get("matched"):
            n = int(cohort["n_targets"])
            ev["cohort"].update(
                all_passed=bool(cohort["all_passed"]),
                fraction_passed=int(cohort["n_passed"]) / n if n else None,
                n_targets=n,
                max_abs_smd=cohort.get("max_abs_smd"),
                kish_n=cohort.get("kish_n"),
            )
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
            raise EvidenceError(
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
    unlisted = unlisted_keys(ev)
    if unlisted:
        raise EvidenceError(
            f"evidence key '{unlisted[0]}' is not in credibility.evidence.EVIDENCE_KEYS "
            f"(closest: {closest_keys(unlisted[0])}); list every new item of evidence there"
            + (f"; also unlisted: {unlisted[1:]}" if len(unlisted) > 1 else "")
        )
    return ev


def lookup_evidence(evidence: Mapping[str, Any], key: str) -> Any:
    """Value of a dotted key in a nested evidence dict, or ``None`` when absent.

    A flat key containing dots (``{"verification.gci_max_pct": 2.1}``) is accepted too.
    NaN counts as absent.

    Parameters
    ----------
    evidence : mapping
        Nested evidence (``{"verification": {"gci_max_pct": 2.1}}``).
    key : str
        Dotted key, e.g. ``"verification.gci_max_pct"``.

    Returns
    -------
    object or None
        The value (numpy scalars converted to Python), or None.

    Examples
    --------
    >>> lookup_evidence({"verification": {"gci_max_pct": 2.1}}, "verification.gci_max_pct")
    2.1
    >>> lookup_evidence({"uq": {"n_uncertain_inputs": float("nan")}}, "uq.n_uncertain_inputs")
    """
    if key in evidence:
        value = evidence[key]
    else:
        value = evidence
        for part in key.split("."):
            if not isinstance(value, Mapping) or part not in value:
                return None
            value = value[part]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _jsonable(value: Any, key: str) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, f"{key}.{k}" if key else str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v, key) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None  # NaN / inf: "not computed", as lookup_evidence treats NaN
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise EvidenceError(
        f"evidence key '{key}': {type(value).__name__} is not a JSON scalar; evidence holds "
        "numbers, booleans, strings and nested dicts/lists of them"
    )


def dump_evidence(evidence: Mapping[str, Any], path: str | Path) -> Path:
    """Write an evidence dict as JSON (NaN and infinities become ``null``).

    Parameters
    ----------
    evidence : mapping
        Nested evidence (e.g. from :func:`collect_evidence`).
    path : str or Path
        Output file (``results/<trial>/evidence/evidence.json``); parents are created.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    EvidenceError
        If a value is not a JSON scalar (message names the dotted key).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_jsonable(evidence, ""), indent=2, sort_keys=True, allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def load_evidence(path: str | Path) -> dict[str, Any]:
    """Read an evidence JSON file written by :func:`dump_evidence`.

    Raises
    ------
    EvidenceError
        If the file cannot be read or is not a JSON object.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise EvidenceError(f"{path}: cannot read evidence JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise EvidenceError(f"{path}: evidence must be a JSON object, got {type(data).__name__}")
    return data
