"""Applicability: how well the virtual cohort covers the populations of the comparator studies.

For each characteristic a comparator population reports (mean, SD, range or proportion), the
virtual cohort's weighted statistic beside it, the standardised mean difference and the share
of virtual patients inside the comparator's range. A characteristic may be restricted to a
subset of patients by a ``where`` selection (:func:`credibility.comparators.parse_where`,
e.g. ``sex=0``).

References
----------
Austin, P. C. (2009). Balance diagnostics for comparing the distribution of baseline
    covariates between treatment groups in propensity-score matched samples. Stat. Med.
    28(25):3083-3107. doi:10.1002/sim.3697
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .comparators import select
from .errors import ValidationError

__all__ = ["APPLICABILITY_COLUMNS", "applicability", "applicability_summary"]

#: Columns of an :func:`applicability` table.
APPLICABILITY_COLUMNS = (
    "characteristic", "variable", "where", "virtual_mean", "virtual_sd", "comparator_mean",
    "comparator_sd", "smd", "range_low", "range_high", "fraction_within", "n", "citation",
    "note",
)  # fmt: skip


def _where_mask(where: str, cohort: xr.Dataset, label: str) -> np.ndarray:
    """Patients a characteristic's ``where`` selection keeps (over per-patient variables)."""
    variables = {
        str(v): np.asarray(cohort[v].values)
        for v in cohort.data_vars
        if cohort[v].dims == ("patient",)
    }
    try:
        return select(where, variables, cohort.sizes["patient"])
    except (KeyError, ValueError) as exc:
        raise ValidationError(f"{label}: restriction '{where}': {exc.args[0]}") from None


def applicability(
    cohort: xr.Dataset,
    comparator_population: Mapping[str, Mapping[str, Any]],
    *,
    on_missing: str = "raise",
) -> pd.DataFrame:
    """Overlap of the virtual cohort with a comparator population's reported characteristics.

    For each characteristic: the virtual (weighted) mean and SD beside the comparator's, the
    standardised mean difference ``SMD = (m_v - m_c) / sqrt((s_v**2 + s_c**2) / 2)`` (with
    only ``s_v`` when the comparator reports no SD; for proportions
    ``(p_v - p_c) / sqrt((p_v (1 - p_v) + p_c (1 - p_c)) / 2)``; Austin 2009,
    doi:10.1002/sim.3697), and the weighted fraction of virtual patients inside the
    comparator's range — ``[min, max]`` when reported, else ``mean -/+ 2 sd``.

    Parameters
    ----------
    cohort : xarray.Dataset
        Cohort (dim ``patient``) with the variables named in the population and optionally
        ``sampling_weight``.
    comparator_population : mapping
        ``{key: {"variable": name (default key), "mean", "sd", "min", "max", "proportion",
        "where": a selection such as "sex=0" (optional), "citation"}}``, e.g. one entry of
        :func:`credibility.comparators.load_populations`. A plain ``{variable: {...}}`` dict
        works too.
    on_missing : {"raise", "skip"}, default "raise"
        What to do with a characteristic whose variable is not in the cohort: raise, or keep
        a row with NaN virtual statistics and ``note = "not in cohort"``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`APPLICABILITY_COLUMNS`. Proportions appear in the mean columns.

    Raises
    ------
    ValidationError
        If a variable or restriction is not in the cohort (message lists available variables).

    Examples
    --------
    >>> cohort = xr.Dataset({"x": ("patient", [1.0, 2.0, 3.0, 4.0])})
    >>> t = applicability(cohort, {"x": {"mean": 2.5, "sd": 1.0, "citation": "a study"}})
    >>> float(t["smd"].iloc[0]), float(t["fraction_within"].iloc[0])
    (0.0, 1.0)
    """
    if on_missing not in ("raise", "skip"):
        raise ValidationError(f"on_missing is '{on_missing}'; allowed: ['raise', 'skip']")
    n = cohort.sizes["patient"]
    w_all = (
        np.asarray(cohort["sampling_weight"].values, dtype=float)
        if "sampling_weight" in cohort
        else np.ones(n)
    )
    out = []
    for key, spec in comparator_population.items():
        var = spec.get("variable", key)
        label = f"comparator population characteristic '{key}'"
        if var not in cohort and on_missing == "skip":
            out.append(
                {
                    "characteristic": key,
                    "variable": var,
                    "where": spec.get("where") or "",
                    "citation": spec.get("citation", ""),
                    "note": "not in cohort",
                }
            )
            continue
        if var not in cohort:
            raise ValidationError(
                f"{label}: variable '{var}' not in cohort; available: {sorted(cohort.data_vars)}"
            )
        mask = np.ones(n, dtype=bool)
        where = spec.get("where") or ""
        if where:
            mask = _where_mask(where, cohort, label)
        x = np.asarray(cohort[var].values, dtype=float)
        mask &= np.isfinite(x)
        x, w = x[mask], w_all[mask] / w_all[mask].sum()

        def get(name: str, spec: Mapping[str, Any] = spec) -> float:
            v = spec.get(name)
            return float(v) if v is not None and np.isfinite(float(v)) else np.nan

        c_mean, c_sd, c_min, c_max, c_prop = (
            get(s) for s in ("mean", "sd", "min", "max", "proportion")
        )
        if np.isfinite(c_prop):
            # binary characteristic coded 0/1
            v_mean = float(np.sum(w * x))
            v_sd = float(np.sqrt(v_mean * (1.0 - v_mean)))
            c_mean, c_sd = c_prop, float(np.sqrt(c_prop * (1.0 - c_prop)))
            denom = np.sqrt((v_sd**2 + c_sd**2) / 2.0)
            lo = hi = frac = np.nan
        else:
            v_mean = float(np.sum(w * x))
            v_sd = float(np.sqrt(np.sum(w * (x - v_mean) ** 2)))
            denom = np.sqrt((v_sd**2 + c_sd**2) / 2.0) if np.isfinite(c_sd) else v_sd
            lo = c_min if np.isfinite(c_min) else c_mean - 2.0 * c_sd
            hi = c_max if np.isfinite(c_max) else c_mean + 2.0 * c_sd
            lo = -np.inf if np.isnan(lo) else lo
            hi = np.inf if np.isnan(hi) else hi
            frac = float(np.sum(w[(x >= lo) & (x <= hi)]))
        smd = (v_mean - c_mean) / denom if np.isfinite(c_mean) and denom > 0 else np.nan
        out.append(
            {
                "characteristic": key,
                "variable": var,
                "where": where,
                "virtual_mean": v_mean,
                "virtual_sd": v_sd,
                "comparator_mean": c_mean,
                "comparator_sd": c_sd,
                "smd": float(smd),
                "range_low": lo,
                "range_high": hi,
                "fraction_within": frac,
                "n": int(mask.sum()),
                "citation": spec.get("citation", ""),
                "note": "",
            }
        )
    return pd.DataFrame(out, columns=list(APPLICABILITY_COLUMNS))


def applicability_summary(table: pd.DataFrame) -> dict[str, float]:
    """Scalar evidence from an :func:`applicability` table, for a credibility plan.

    Returns
    -------
    dict
        ``max_abs_smd`` (largest |SMD| over assessed characteristics), ``min_fraction_within``
        (smallest share of virtual patients inside a comparator range), ``n_characteristics``
        (assessed rows), ``n_not_in_cohort``. NaN when nothing could be assessed.
    """
    assessed = table[table["note"] != "not in cohort"] if "note" in table else table
    smd = assessed["smd"].abs().dropna()
    frac = assessed["fraction_within"].dropna()
    return {
        "max_abs_smd": float(smd.max()) if len(smd) else np.nan,
        "min_fraction_within": float(frac.min()) if len(frac) else np.nan,
        "n_characteristics": int(len(assessed)),
        "n_not_in_cohort": int(len(table) - len(assessed)),
    }
