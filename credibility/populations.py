"""One virtual trial, answered for several populations without re-simulating.

Every virtual patient receives every arm once; a population is a set of patient weights over
the same simulated patients (the cohort stage matches them to each population's published
baseline table). :func:`population_answers` gives the answer to the trial's question
(:func:`credibility.answer.answer_tables`) under each population's weights, the
representation of the report's subgroups in each, and, for every estimate, whether two
populations' answers differ beyond their intervals (the intervals do not overlap: a
conservative rule for a difference, as both answers come from the same patients).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .answer import answer_tables
from .statistics import kish_n
from .tables import representation_table

__all__ = ["population_answers"]


def _weighted(cohort: xr.Dataset, weights: np.ndarray | None) -> xr.Dataset:
    if weights is None:
        return cohort
    return cohort.assign(sampling_weight=("patient", np.asarray(weights, dtype=float)))


def population_answers(
    outcomes: xr.Dataset,
    cohort: xr.Dataset,
    question: Mapping[str, Any],
    populations: Mapping[str, Mapping[str, Any]],
    *,
    subgroups: Sequence[Mapping[str, Any]] = (),
    conf: float = 0.95,
) -> dict[str, Any]:
    """The question answered for each population, and where the answers differ.

    Parameters
    ----------
    outcomes : xarray.Dataset
        Dims ``(arm, patient)``.
    cohort : xarray.Dataset
        The cohort; its ``sampling_weight`` defines the trial's own (enrolled) population.
    question : mapping
        As for :func:`credibility.answer.answer_tables`.
    populations : mapping
        ``name -> {"label": str, "weights": array (patient,)}``; a population without
        ``weights`` uses the cohort's own. The first is the reference of the comparison.
    subgroups : sequence of mapping
        The report's subgroup bands (:func:`credibility.tables.representation_table`).
    conf : float

    Returns
    -------
    dict
        ``by_arm`` (long table: ``population, endpoint, arm, estimate, ci_low, ci_high,
        n, unit``), ``paired`` (the same for the paired differences), ``comparison`` (one
        row per estimate: the reference's and each other population's value and interval,
        and ``differs``: the intervals do not overlap), ``representation`` (subgroup shares
        per population), ``effective_n`` (Kish n of each population's weights).
    """
    by_arm, paired, representation, effective = [], [], [], {}
    for population in populations.values():
        weighted = _weighted(cohort, population.get("weights"))
        a, p = answer_tables(outcomes, weighted, question, conf=conf)
        label = population["label"]
        by_arm.append(a.assign(population=label))
        paired.append(p.assign(population=label))
        if subgroups:
            rep = representation_table(weighted, subgroups)
            representation.append(rep.assign(population=label))
        w = (
            weighted["sampling_weight"].values
            if "sampling_weight" in weighted
            else np.ones(cohort.sizes["patient"])
        )
        effective[label] = float(kish_n(np.asarray(w, dtype=float)))
    by_arm_t = pd.concat(by_arm, ignore_index=True)
    paired_t = pd.concat(paired, ignore_index=True)
    return {
        "by_arm": by_arm_t,
        "paired": paired_t,
        "comparison": _comparison(by_arm_t, paired_t, [p["label"] for p in populations.values()]),
        "representation": pd.concat(representation, ignore_index=True) if representation else None,
        "effective_n": effective,
    }


def _comparison(by_arm: pd.DataFrame, paired: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    """Each estimate of the reference population against the same estimate of the others."""
    rows = []
    reference, others = labels[0], labels[1:]
    tables = (
        ("arm", by_arm.rename(columns={"arm": "what"})),
        ("paired", paired.rename(columns={"comparison": "what"})),
    )
    for kind, table in tables:
        ref = table[table["population"] == reference].set_index(["endpoint", "what"])
        for other in others:
            alt = table[table["population"] == other].set_index(["endpoint", "what"])
            for key, r in ref.iterrows():
                if key not in alt.index:
                    continue
                o = alt.loc[key]
                rows.append(
                    {
                        "endpoint": key[0],
                        "estimate_of": key[1],
                        "kind": kind,
                        "unit": r["unit"],
                        reference: f"{r['estimate']:.3g} [{r['ci_low']:.3g}, {r['ci_high']:.3g}]",
                        "population": other,
                        "value": f"{o['estimate']:.3g} [{o['ci_low']:.3g}, {o['ci_high']:.3g}]",
                        "difference": float(o["estimate"] - r["estimate"]),
                        "differs": bool(o["ci_low"] > r["ci_high"] or o["ci_high"] < r["ci_low"]),
                    }
                )
    return pd.DataFrame(rows)
