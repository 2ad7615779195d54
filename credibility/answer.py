"""The answer up front: the question of interest in its subgroup, by arm and paired.

A trial config's ``report.question`` names the subgroup the question is about (a ``where``
selection of cohort variables, with its source), the endpoints summarised as means and the
events summarised as proportions (a class code or a threshold of an outcome). This module
computes, for the patients of that subgroup:

* by arm: the weighted mean (Student t interval, Kish effective n) of each mean endpoint and
  the share (Clopper–Pearson interval) of each event;
* paired differences between each arm and the reference arm (the first), over the patients
  simulated in both: every virtual patient receives every device, so the difference is
  within-patient (a paired-t interval of the mean difference);
* a figure of the arms' distributions of one endpoint.

Nothing here knows a device: the subgroup, endpoints and events come from the config.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .comparators import event_values, select
from .statistics import mean_ci, patient_weights, proportion_ci

__all__ = ["answer_tables", "plot_answer"]


def _subgroup(cohort: xr.Dataset, outcomes: xr.Dataset, where: str) -> np.ndarray:
    cohort = (
        cohort.sel(patient=outcomes["patient"].values) if "patient" in cohort.coords else cohort
    )
    variables = {
        str(v): np.asarray(cohort[v].values)
        for v in cohort.data_vars
        if cohort[v].dims == ("patient",)
    }
    return select(where, variables, outcomes.sizes["patient"])


def answer_tables(
    outcomes: xr.Dataset,
    cohort: xr.Dataset,
    question: Mapping[str, Any],
    *,
    conf: float = 0.95,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """By-arm estimates and paired differences in the question's subgroup.

    Parameters
    ----------
    outcomes : xarray.Dataset
        Dims ``(arm, patient)`` with ``status``.
    cohort : xarray.Dataset
        The cohort (the subgroup's variables, ``sampling_weight``).
    question : mapping
        ``subgroup`` {``label``, ``where``, ``source``}, ``means`` (list of outcome names),
        ``proportions`` (list of {``label``, ``quantity``, ``category`` or ``threshold``}).
    conf : float, default 0.95

    Returns
    -------
    by_arm : pandas.DataFrame
        ``endpoint, kind, arm, n, estimate, ci_low, ci_high, unit``.
    paired : pandas.DataFrame
        ``endpoint, comparison, n, estimate, ci_low, ci_high, unit`` (percentage points for
        proportions).
    """
    mask = _subgroup(cohort, outcomes, question["subgroup"]["where"])
    arms = [str(a) for a in outcomes["arm"].values]
    w = patient_weights(outcomes, cohort)
    ok = outcomes["status"].transpose("arm", "patient").values == 0
    items: list[tuple[str, str, np.ndarray, str]] = []
    for name in question.get("means", []):
        x = np.asarray(outcomes[name].transpose("arm", "patient").values, dtype=float)
        items.append((name, "mean", x, outcomes[name].attrs.get("units", "")))
    for prop in question.get("proportions", []):
        x = outcomes[prop["quantity"]].transpose("arm", "patient").values
        items.append((prop["label"], "proportion", event_values(prop, x), "%"))
    rows, pairs = [], []
    for label, kind, x, unit in items:
        scale = 100.0 if kind == "proportion" else 1.0
        for i, arm in enumerate(arms):
            sel = ok[i] & mask & np.isfinite(x[i])
            r = (proportion_ci if kind == "proportion" else mean_ci)(
                np.nan_to_num(x[i]), w, sel, conf
            )
            rows.append(
                {
                    "endpoint": label,
                    "kind": kind,
                    "arm": arm,
                    "n": int(r["n"][0]),
                    "estimate": scale * float(r["estimate"][0]),
                    "ci_low": scale * float(r["ci_low"][0]),
                    "ci_high": scale * float(r["ci_high"][0]),
                    "unit": unit,
                }
            )
        for i in range(1, len(arms)):
            both = ok[i] & ok[0] & mask & np.isfinite(x[i]) & np.isfinite(x[0])
            r = mean_ci(np.nan_to_num(x[i] - x[0]), w, both, conf)
            pairs.append(
                {
                    "endpoint": label,
                    "comparison": f"{arms[i]} − {arms[0]}",
                    "n": int(r["n"][0]),
                    "estimate": scale * float(r["estimate"][0]),
                    "ci_low": scale * float(r["ci_low"][0]),
                    "ci_high": scale * float(r["ci_high"][0]),
                    "unit": "percentage points" if kind == "proportion" else unit,
                }
            )
    return pd.DataFrame(rows), pd.DataFrame(pairs)


def plot_answer(
    outcomes: xr.Dataset,
    cohort: xr.Dataset,
    question: Mapping[str, Any],
    path: str | Path,
) -> Path | None:
    """Histograms of the arms' ``question["figure"]`` endpoint in the subgroup (PNG).

    Event thresholds on that endpoint are drawn as vertical lines. Returns the path, or None
    when the question names no figure.
    """
    name = question.get("figure")
    if not name:
        return None
    from matplotlib.figure import Figure  # no pyplot state: stages may draw in threads

    mask = _subgroup(cohort, outcomes, question["subgroup"]["where"])
    ok = outcomes["status"].transpose("arm", "patient").values == 0
    x = np.asarray(outcomes[name].transpose("arm", "patient").values, dtype=float)
    arms = [str(a) for a in outcomes["arm"].values]
    finite = x[ok & mask[None, :]]
    finite = finite[np.isfinite(finite)]
    bins = np.linspace(np.nanpercentile(finite, 0.5), np.nanpercentile(finite, 99.5), 40)
    fig = Figure(figsize=(7.5, 3.6))
    ax = fig.subplots()
    for i, arm in enumerate(arms):
        values = x[i][ok[i] & mask & np.isfinite(x[i])]
        ax.hist(
            values,
            bins=bins,
            alpha=0.5,
            label=f"{arm} (n = {values.size})",
            density=True,
            histtype="stepfilled",  # one patch, not one per bin: the same look, drawn faster
        )
    for prop in question.get("proportions", []):
        if prop["quantity"] == name and prop.get("threshold"):
            level = float(prop["threshold"].lstrip("<>="))
            ax.axvline(level, color="k", ls="--", lw=1)
            ax.text(level, ax.get_ylim()[1] * 0.92, f" {prop['label']}", fontsize=8)
    ax.set_xlabel(f"{name} ({outcomes[name].attrs.get('units', '')})")
    ax.set_ylabel("density")
    ax.set_title(question["subgroup"]["label"], fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
