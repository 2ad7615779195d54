"""Result tables of a virtual trial: by arm, paired between arms, by subgroup, failures.

Nothing here knows a device. Endpoints are named by the trial config; binary events are the
model's declared :class:`models.Event` objects (anything with ``quantity``, ``label`` and
``occurs(values)``); subgroups are the config's ``report.subgroups`` (each with its source).
Estimates are weighted by the cohort's ``sampling_weight`` (:mod:`credibility.statistics`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import pandas as pd
import xarray as xr

from .errors import CredibilityError
from .statistics import mean_ci, patient_weights, proportion_ci, weighted_percentiles

__all__ = [
    "TableError",
    "arm_differences",
    "endpoint_names",
    "failure_table",
    "outcome_evidence",
    "representation_table",
    "results_by_arm",
    "subgroup_levels",
    "subgroup_table",
]

#: Status codes (models.STATUS) used when the Dataset lacks flag attributes.
_STATUS_FALLBACK = {0: "ok", 1: "invalid_input", 2: "solver_failure", 3: "timeout"}
_MAX_IDS = 50


class TableError(CredibilityError):
    """A table cannot be built: an endpoint, event or subgroup variable is missing."""


class EventLike(Protocol):
    quantity: str
    label: str

    def occurs(self, values: np.ndarray) -> np.ndarray: ...


def endpoint_names(outcomes: xr.Dataset, endpoints: Sequence[str] | None) -> list[str]:
    """The endpoints to tabulate: those given (checked), else every float per-patient output."""
    if endpoints is None:
        return sorted(
            str(v)
            for v in outcomes.data_vars
            if outcomes[v].dims == ("arm", "patient") and outcomes[v].dtype.kind == "f"
        )
    missing = [e for e in endpoints if e not in outcomes]
    if missing:
        raise TableError(
            f"endpoints {missing} not in outcomes; available: {sorted(outcomes.data_vars)}"
        )
    return list(endpoints)


def _event_values(
    outcomes: xr.Dataset, events: Mapping[str, EventLike] | None
) -> dict[str, tuple[str, np.ndarray]]:
    """Label and 0/1/NaN array (arm, patient) of the events whose quantity is in the outcomes.

    An event on a quantity with dims beyond ``(arm, patient)`` (one value per element of a patient)
    is counted per patient as "in any element" (labelled so); elements without a value do
    not count, and a patient with none has no value.
    """
    out = {}
    for name, event in (events or {}).items():
        if event.quantity not in outcomes:
            continue
        var = outcomes[event.quantity].transpose("arm", "patient", ...)
        x = np.asarray(var.values)
        occurs = np.asarray(event.occurs(x), dtype=float)
        extra = var.dims[2:]
        label = event.label
        if extra:
            valid = np.isfinite(occurs)
            axes = tuple(range(2, occurs.ndim))
            anywhere = np.where(valid, occurs, 0.0).max(axis=axes)
            occurs = np.where(valid.any(axis=axes), anywhere, np.nan)
            label = f"{event.label} (any {' × '.join(map(str, extra))})"
        out[name] = (label, occurs)
    return out


def results_by_arm(
    outcomes: xr.Dataset,
    cohort: xr.Dataset | None = None,
    *,
    endpoints: Sequence[str] | None = None,
    events: Mapping[str, EventLike] | None = None,
    conf: float = 0.95,
) -> pd.DataFrame:
    """Population results of every arm with intervals.

    Float endpoints: weighted mean with a Student-t ``conf`` interval (Kish effective n), SD
    and the weighted 2.5 / 50 / 97.5 % population percentiles (inverse weighted ECDF), over
    simulations with ``status == 0``. Events: the share of patients with the event (among
    those with a valid value), Clopper–Pearson interval, in percent.

    Returns
    -------
    pandas.DataFrame
        Columns ``arm, endpoint, unit, n, estimate, ci_low, ci_high, sd, p2_5, median,
        p97_5``.
    """
    eps = endpoint_names(outcomes, endpoints)
    arms = [str(a) for a in outcomes["arm"].values]
    ok = outcomes["status"].transpose("arm", "patient").values == 0
    w = patient_weights(outcomes, cohort)
    frames = []
    for name in eps:
        x = np.asarray(outcomes[name].transpose("arm", "patient").values, dtype=float)
        r = mean_ci(x, w, ok, conf)
        q = weighted_percentiles(x, w, ok, (0.025, 0.5, 0.975))
        frames.append(
            pd.DataFrame(
                {
                    "arm": arms,
                    "endpoint": name,
                    "unit": outcomes[name].attrs.get("units", ""),
                    "n": r["n"],
                    "estimate": r["estimate"],
                    "ci_low": r["ci_low"],
                    "ci_high": r["ci_high"],
                    "sd": r["sd"],
                    "p2_5": q[:, 0],
                    "median": q[:, 1],
                    "p97_5": q[:, 2],
                }
            )
        )
    for label, e in _event_values(outcomes, events).values():
        r = proportion_ci(np.nan_to_num(e), w, ok & np.isfinite(e), conf)
        frames.append(
            pd.DataFrame(
                {
                    "arm": arms,
                    "endpoint": label,
                    "unit": "%",
                    "n": r["n"],
                    "estimate": 100 * r["estimate"],
                    "ci_low": 100 * r["ci_low"],
                    "ci_high": 100 * r["ci_high"],
                }
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def arm_differences(
    outcomes: xr.Dataset,
    cohort: xr.Dataset | None = None,
    *,
    reference: str | None = None,
    endpoints: Sequence[str] | None = None,
    events: Mapping[str, EventLike] | None = None,
    conf: float = 0.95,
) -> pd.DataFrame:
    """Paired differences between arms (each virtual patient receives every arm).

    For every non-reference arm and endpoint: weighted mean of the per-patient difference
    ``arm - reference`` over patients with ``status == 0`` in both arms, with a Student-t
    interval; for each event the difference in its share (percentage points, the same paired
    interval on the per-patient 0/1 differences).

    Returns
    -------
    pandas.DataFrame
        Columns ``comparison, endpoint, unit, n, estimate, ci_low, ci_high``.

    Raises
    ------
    TableError
        If ``reference`` is not an arm.
    """
    arms = [str(a) for a in outcomes["arm"].values]
    if len(arms) < 2:
        return pd.DataFrame()
    reference = reference or arms[0]
    if reference not in arms:
        raise TableError(f"reference arm '{reference}' not in outcomes; allowed: {arms}")
    eps = endpoint_names(outcomes, endpoints)
    w = patient_weights(outcomes, cohort)
    ok = outcomes["status"].transpose("arm", "patient").values == 0
    i_ref = arms.index(reference)
    values = {
        e: (np.asarray(outcomes[e].transpose("arm", "patient").values, dtype=float), 1.0,
            outcomes[e].attrs.get("units", ""))
        for e in eps
    }  # fmt: skip
    for label, e in _event_values(outcomes, events).values():
        values[label] = (e, 100.0, "percentage points")
    rows = []
    for i, arm in enumerate(arms):
        if i == i_ref:
            continue
        for name, (x, scale, unit) in values.items():
            both = ok[i] & ok[i_ref] & np.isfinite(x[i]) & np.isfinite(x[i_ref])
            r = mean_ci(np.nan_to_num(x[i] - x[i_ref]), w, both, conf)
            rows.append(
                {
                    "comparison": f"{arm} − {reference}",
                    "endpoint": name,
                    "unit": unit,
                    "n": r["n"][0],
                    "estimate": scale * r["estimate"][0],
                    "ci_low": scale * r["ci_low"][0],
                    "ci_high": scale * r["ci_high"][0],
                }
            )
    return pd.DataFrame(rows)


def _flag_labels(var: xr.DataArray, fallback: Mapping[int, str]) -> dict[int, str]:
    values = var.attrs.get("flag_values")
    meanings = var.attrs.get("flag_meanings")
    if values is not None and meanings:
        return {int(v): m for v, m in zip(np.ravel(values), str(meanings).split(), strict=False)}
    return dict(fallback)


def subgroup_levels(
    cohort: xr.Dataset, subgroups: Sequence[Mapping[str, Any]]
) -> list[tuple[str, np.ndarray, list[str]]]:
    """Level of every patient in each subgroup the trial config defines.

    Parameters
    ----------
    cohort : xarray.Dataset
    subgroups : sequence of mapping
        ``{"label", "variable", "source"}`` and, for a continuous variable, ``edges`` (inner
        band edges, bands closed on the left: ``[a, b)``; ``right: true`` closes them on the
        right) and optional ``labels``; a variable without edges is categorical (its
        ``flag_meanings``). Subgroups whose variable the cohort lacks are left out.

    Returns
    -------
    list of (label, level per patient, ordered levels)
    """
    groups = []
    for sg in subgroups:
        var = sg["variable"]
        if var not in cohort:
            continue
        x = np.asarray(cohort[var].values)
        edges = sg.get("edges")
        if not edges:
            names = _flag_labels(cohort[var], {})
            codes = np.unique(x)
            levels = [names.get(int(c), str(c)) for c in codes]
            level = np.array(levels, dtype=object)[np.searchsorted(codes, x)]
        else:
            edges = [float(e) for e in edges]
            units = cohort[var].attrs.get("units", "")
            levels = list(sg.get("labels") or _band_labels(edges, units, sg.get("right", False)))
            if len(levels) != len(edges) + 1:
                raise TableError(
                    f"report.subgroups '{sg['label']}': {len(edges)} edges need "
                    f"{len(edges) + 1} labels; got {levels}"
                )
            xf = x.astype(float)
            idx = np.digitize(xf, edges, right=bool(sg.get("right", False)))
            level = np.where(np.isfinite(xf), np.array(levels, dtype=object)[idx], "missing")
        groups.append((sg["label"], np.asarray(level), levels))
    return groups


def _band_labels(edges: Sequence[float], units: str, right: bool) -> list[str]:
    lo, hi = ("≤", ">") if right else ("<", "≥")
    out = [f"{lo}{edges[0]:g} {units}".strip()]
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        out.append(f"{a:g}–{b:g} {units}".strip())
    out.append(f"{hi}{edges[-1]:g} {units}".strip())
    return out


def subgroup_table(
    cohort: xr.Dataset,
    outcomes: xr.Dataset,
    subgroups: Sequence[Mapping[str, Any]],
    *,
    endpoints: Sequence[str] | None = None,
    events: Mapping[str, EventLike] | None = None,
    conf: float = 0.95,
) -> pd.DataFrame:
    """Endpoints and event shares by subgroup level and arm, with intervals.

    Returns
    -------
    pandas.DataFrame
        Columns ``subgroup, level, arm, endpoint, unit, n, estimate, ci_low, ci_high``.
    """
    eps = endpoint_names(outcomes, endpoints)
    arms = [str(a) for a in outcomes["arm"].values]
    w = patient_weights(outcomes, cohort)
    ok = outcomes["status"].transpose("arm", "patient").values == 0
    values = {  # read each endpoint once (outcomes may be a lazily opened store)
        ep: np.asarray(outcomes[ep].transpose("arm", "patient").values, dtype=float) for ep in eps
    }
    event_values = _event_values(outcomes, events)
    frames = []
    for name, level, levels in subgroup_levels(cohort, subgroups):
        present = [lv for lv in levels if (level == lv).any()]
        if not present:
            continue
        in_level = np.stack([level == lv for lv in present])  # (levels, patient)
        for i, arm in enumerate(arms):
            mask = in_level & ok[i]
            base = {"subgroup": name, "level": present, "arm": arm}
            for ep in eps:
                r = mean_ci(values[ep][i], w, mask, conf)
                frames.append(
                    pd.DataFrame(
                        {
                            **base,
                            "endpoint": ep,
                            "unit": outcomes[ep].attrs.get("units", ""),
                            **{k: r[k] for k in ("n", "estimate", "ci_low", "ci_high")},
                        }
                    )
                )
            for label, e in event_values.values():
                r = proportion_ci(np.nan_to_num(e[i]), w, mask & np.isfinite(e[i]), conf)
                frames.append(
                    pd.DataFrame(
                        {
                            **base,
                            "endpoint": label,
                            "unit": "%",
                            "n": r["n"],
                            "estimate": 100 * r["estimate"],
                            "ci_low": 100 * r["ci_low"],
                            "ci_high": 100 * r["ci_high"],
                        }
                    )
                )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def representation_table(
    cohort: xr.Dataset, subgroups: Sequence[Mapping[str, Any]]
) -> pd.DataFrame:
    """Size of every subgroup level in the virtual cohort (unweighted and weighted shares).

    Returns
    -------
    pandas.DataFrame
        Columns ``subgroup, level, n, share_pct, weighted_share_pct, source``.
    """
    n = cohort.sizes["patient"]
    w = (
        np.asarray(cohort["sampling_weight"].values, dtype=float)
        if "sampling_weight" in cohort
        else np.ones(n)
    )
    sources = {sg["label"]: sg.get("source", "") for sg in subgroups}
    rows = []
    for name, level, levels in subgroup_levels(cohort, subgroups):
        for lv in [*levels, "missing"]:
            m = level == lv
            if lv == "missing" and not m.any():
                continue
            rows.append(
                {
                    "subgroup": name,
                    "level": lv,
                    "n": int(m.sum()),
                    "share_pct": 100.0 * m.mean(),
                    "weighted_share_pct": 100.0 * w[m].sum() / w.sum(),
                    "source": sources.get(name, ""),
                }
            )
    return pd.DataFrame(rows)


def failure_table(outcomes: xr.Dataset) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Status counts per arm and the ids of the patients whose simulation did not succeed.

    Parameters
    ----------
    outcomes : xarray.Dataset
        Dims ``(arm, patient)`` with int8 ``status`` (labels from its ``flag_values`` /
        ``flag_meanings`` attributes, else ``models.STATUS`` codes).

    Returns
    -------
    counts : pandas.DataFrame
        Columns ``arm, status, code, n, share_pct`` (every status of the flag attributes).
    failing : pandas.DataFrame
        Columns ``arm, status, n, patients`` (ids, comma separated, at most 50 listed then
        ``"… (+k more)"``); empty when every simulation succeeded.
    """
    labels = _flag_labels(outcomes["status"], _STATUS_FALLBACK)
    status = outcomes["status"].transpose("arm", "patient").values
    ids = np.asarray(outcomes["patient"].values)
    arms = [str(a) for a in outcomes["arm"].values]
    codes = sorted(set(labels) | set(np.unique(status).tolist()))
    counts = np.stack([(status == c).sum(axis=1) for c in codes], axis=1)  # (arm, code)
    count_rows = pd.DataFrame(
        {
            "arm": np.repeat(arms, len(codes)),
            "status": [labels.get(c, f"code {c}") for c in codes] * len(arms),
            "code": codes * len(arms),
            "n": counts.ravel(),
            "share_pct": (100.0 * counts / status.shape[1]).ravel(),
        }
    )
    fail_rows = []
    for i, arm in enumerate(arms):
        for c in codes:
            if c == 0:
                continue
            who = ids[status[i] == c]
            if who.size == 0:
                continue
            shown = ", ".join(str(p) for p in who[:_MAX_IDS])
            if who.size > _MAX_IDS:
                shown += f", … (+{who.size - _MAX_IDS} more)"
            fail_rows.append(
                {
                    "arm": arm,
                    "status": labels.get(c, f"code {c}"),
                    "n": int(who.size),
                    "patients": shown,
                }
            )
    return count_rows, pd.DataFrame(fail_rows, columns=["arm", "status", "n", "patients"])


def outcome_evidence(outcomes: xr.Dataset) -> dict[str, float]:
    """Simulation-level evidence: shares of ok / invalid-input / solver-failure cells.

    Parameters
    ----------
    outcomes : xarray.Dataset
        Outcomes with ``status`` (0 ok, 1 invalid_input, 2 solver_failure, 3 timeout).

    Returns
    -------
    dict
        ``n_cells``, ``ok_fraction``, ``invalid_input_fraction``, ``solver_failure_fraction``
        (solver failures and timeouts, status 2 and 3).
    """
    s = outcomes["status"].values
    n = s.size
    return {
        "n_cells": int(n),
        "ok_fraction": float((s == 0).mean()) if n else math.nan,
        "invalid_input_fraction": float((s == 1).mean()) if n else math.nan,
        "solver_failure_fraction": float(np.isin(s, (2, 3)).mean()) if n else math.nan,
    }
