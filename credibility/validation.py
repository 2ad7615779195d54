"""Validation of a virtual trial against clinical comparators.

The virtual trial predicts population-level quantities (means and medians of endpoints, shares
of patients with an event, between-patient SDs, …) that are compared with published clinical
figures (the *comparators*, kept as CSV files with a citation on every row;
:mod:`credibility.comparators`). For each comparator row: the virtual patients it describes
(:func:`selected_values`), the statistic it reports computed over them
(:func:`predict_statistic`), its uncertainty (:func:`comparator_uncertainty`) and the
comparison (:func:`credibility.metrics.comparison_error`, :func:`credibility.metrics.area_metric`);
:func:`validate` does all rows and :func:`validation_summary` gives the plan's evidence. This
module reads xarray Datasets and pandas DataFrames only; it does not import the simulation
packages.

References
----------
ASME V&V 20-2009 (R2021). Standard for verification and validation in computational fluid
    dynamics and heat transfer. New York: ASME.
Ferson, S., Oberkampf, W. L., Ginzburg, L. (2008). Model validation and predictive capability
    for the thermal challenge problem. Comput. Methods Appl. Mech. Eng. 197:2408-2430.
    doi:10.1016/j.cma.2007.07.030
Clopper, C. J., Pearson, E. S. (1934). The use of confidence or fiducial limits illustrated in
    the case of the binomial. Biometrika 26(4):404-413. doi:10.1093/biomet/26.4.404
Kish, L. (1965). Survey Sampling. New York: Wiley (effective sample size of weighted data).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from .comparators import event_of, rows_with_role, where_variables
from .errors import ValidationError
from .metrics import ComparisonError, area_metric, comparison_error
from .selection import selected_values
from .statistics import kish_n, patient_weights, proportion_interval, weighted_percentiles

__all__ = [
    "VALIDATION_COLUMNS",
    "ComparisonError",
    "Prediction",
    "ValidationError",
    "area_metric",
    "comparator_uncertainty",
    "comparison_error",
    "predict_statistic",
    "selected_values",
    "validate",
    "validation_summary",
]


# ----------------------------------------------------------------------------- validate


def _norm_unit(u: str) -> str:
    return (
        str(u).replace("²", "2").replace("^", "").replace(" ", "").replace("·", "").lower().strip()
    )


@dataclass(frozen=True)
class Prediction:
    """A virtual-cohort statistic for one comparator row.

    Attributes
    ----------
    value, low, high : float
        The statistic and its ``conf`` interval (Student t for means, normal for medians and
        SDs, Clopper–Pearson for proportions).
    se : float
        Its standard error (the Monte Carlo error of the finite virtual cohort).
    sd, sd_se : float
        Between-patient SD of the selected values and its standard error (NaN for
        proportions).
    n_effective : float
        Kish effective n of the selected patients.
    n : int
        Number of selected patients.
    """

    value: float
    low: float
    high: float
    se: float
    sd: float
    sd_se: float
    n_effective: float
    n: int


def predict_statistic(
    values: np.ndarray, weights: np.ndarray, row: Mapping[str, Any], *, conf: float = 0.95
) -> Prediction:
    """The statistic a comparator row reports, computed over the selected virtual patients.

    Parameters
    ----------
    values : ndarray
        The quantity of the selected patients (valid ones only).
    weights : ndarray
        Their sampling weights.
    row : mapping
        A comparator row (``statistic`` and, for proportions, ``category`` or ``threshold``).
    conf : float, default 0.95

    Returns
    -------
    Prediction
    """
    n_raw = int(values.size)
    if n_raw == 0:
        return Prediction(*(np.nan,) * 7, 0)
    n_eff = kish_n(weights)
    wn = weights / weights.sum()
    z = stats.norm.ppf(0.5 + conf / 2.0)
    if row["statistic"] == "proportion":
        event = np.asarray(event_of(row)(values), dtype=float)
        p = float(np.sum(wn * event))
        lo, hi = proportion_interval(p * n_eff, n_eff, conf=conf)
        se = float(np.sqrt(p * (1.0 - p) / n_eff))
        return Prediction(p, float(lo), float(hi), se, np.nan, np.nan, n_eff, n_raw)
    mean = float(np.sum(wn * values))
    sd = float(np.sqrt(np.sum(wn * (values - mean) ** 2) * n_eff / max(n_eff - 1.0, 1.0)))
    sd_se = sd / np.sqrt(2.0 * max(n_eff - 1.0, 1.0))
    se = sd / np.sqrt(n_eff)
    if row["statistic"] == "sd":
        return Prediction(sd, sd - z * sd_se, sd + z * sd_se, sd_se, sd, sd_se, n_eff, n_raw)
    if row["statistic"] == "median":
        centre = float(weighted_percentiles(values, weights, True, (0.5,))[0, 0])
        se = 1.2533 * se  # asymptotic SE of a normal median, sqrt(pi/2) * sd / sqrt(n)
        return Prediction(centre, centre - z * se, centre + z * se, se, sd, sd_se, n_eff, n_raw)
    tq = stats.t.ppf(0.5 + conf / 2.0, max(n_eff - 1.0, 1.0))
    return Prediction(mean, mean - tq * se, mean + tq * se, float(se), sd, sd_se, n_eff, n_raw)


def comparator_uncertainty(row: Mapping[str, Any]) -> tuple[float, str]:
    """Standard uncertainty ``u_D`` of a comparator value and how it was obtained."""
    n = row.get("n", np.nan)
    has_n = np.isfinite(n) and n > 1
    if row["statistic"] == "sd":
        if has_n:
            return float(row["value"] / np.sqrt(2.0 * (n - 1.0))), "sd/sqrt(2(n-1))"
        return 0.0, "u_D not reported (taken as 0)"
    if np.isfinite(row["sd"]) and has_n:
        return float(row["sd"] / np.sqrt(n)), "sd/sqrt(n)"
    if np.isfinite(row["ci_low"]) and np.isfinite(row["ci_high"]):
        return float((row["ci_high"] - row["ci_low"]) / (2.0 * 1.959964)), "95% CI width/3.92"
    if row["statistic"] == "proportion" and has_n:
        p = row["value"]
        return float(np.sqrt(p * (1.0 - p) / n)), "binomial sqrt(p(1-p)/n)"
    return 0.0, "u_D not reported (taken as 0)"


#: Columns of a :func:`validate` table.
VALIDATION_COLUMNS = (
    "id", "study", "role", "quantity", "statistic", "arm", "size_mm", "where", "timepoint",
    "timepoint_days", "unit", "observed", "observed_low", "observed_high", "n", "predicted",
    "predicted_low", "predicted_high", "n_virtual", "n_effective", "E", "rel_error_pct",
    "u_num", "u_input", "u_D", "u_val", "k", "verdict", "area_metric", "observed_sd",
    "predicted_sd", "predicted_sd_low", "predicted_sd_high", "sd_verdict", "population",
    "method", "citation", "note",
)  # fmt: skip


def _arrays(ds: xr.Dataset, names: set[str]) -> dict[str, np.ndarray]:
    return {
        str(v): np.asarray(ds[v].transpose("arm", "patient", ...).values)
        for v in ds.data_vars
        if v in names and ds[v].dims[:2] in (("arm", "patient"), ("patient", "arm"))
    }


def validate(
    outcomes: xr.Dataset,
    comparators: pd.DataFrame,
    cohort: xr.Dataset | None = None,
    *,
    role: str = "validation",
    at_timepoint: Callable[[float], xr.Dataset | str] | None = None,
    u_num: Mapping[str, float] | None = None,
    u_input: Mapping[str, float] | None = None,
    k: float = 2.0,
    conf: float = 0.95,
    size_variable: str | None = None,
) -> pd.DataFrame:
    """Compare virtual-trial predictions with the comparator rows of one role.

    Only rows whose ``role`` is ``role`` are compared: with the default, calibration rows
    never enter a validation table. For each row the population statistic of the virtual
    cohort (:func:`predict_statistic`) is computed over the patients of the row's arm
    (``pooled``: all arms), device size and ``where`` selection with ``status == 0`` and a
    valid value, weighted by the cohort ``sampling_weight`` (Kish effective n), from the
    outcomes *at the row's time point*: ``at_timepoint(days)`` returns the outcomes projected
    to that time, or a string giving why the model cannot predict it (the row is then
    ``excluded`` with that reason). A row on a variable with extra dims after
    ``(arm, patient)`` (one value per element) compares elements, not patients
    (:func:`selected_values`); the elements of one patient then count as independent in the
    Kish n and the interval (clustering within patients is not accounted for).

    The V&V 20 comparison uses ``u_num = sqrt(u_num[quantity]² + SE_pred²)`` (the Monte
    Carlo error of the finite virtual cohort is a numerical error), ``u_input[quantity]``
    and ``u_D`` (:func:`comparator_uncertainty`); the verdict is ``consistent`` when
    ``|E| <= k u_val``. Rows that report a between-patient SD are compared by distribution as
    well: the area metric against ``Normal(value, sd)`` (Ferson et al. 2008) and the
    published SD against the virtual SD (``sd_verdict``, same rule with the SDs' standard
    errors).

    Parameters
    ----------
    outcomes : xarray.Dataset
        Dims ``(arm, patient[, extra dims])``; the comparator quantities, ``status`` (0 ok,
        dims ``(arm, patient)``) and, for rows with ``size_mm``, the ``size_variable``.
    comparators : pandas.DataFrame
        As returned by :func:`credibility.comparators.load_comparators`.
    cohort : xarray.Dataset, optional
        Cohort with ``sampling_weight`` and the variables ``where`` clauses name.
    role : {"validation", "calibration"}
    at_timepoint : callable, optional
        ``days -> outcomes Dataset | reason``; default: the outcomes as they are, for every
        time point.
    u_num, u_input : mapping of str to float, optional
        Additional standard uncertainties per quantity. Missing quantities count as 0.
    k : float, default 2.0
        Coverage factor for the verdict.
    conf : float, default 0.95
        Confidence level of the prediction interval.
    size_variable : str, optional
        Outcome variable a row's ``size_mm`` is compared with (the model's declared device
        size output); required when a row of the role has a ``size_mm``.

    Returns
    -------
    pandas.DataFrame
        One row per comparator of the role, columns :data:`VALIDATION_COLUMNS`; ``verdict``
        is one of ``consistent``, ``inconsistent``, ``no prediction``, ``excluded``.

    Raises
    ------
    ValidationError
        If a comparator's quantity, arm or ``where`` variable is not in the outcomes or
        cohort (message lists the available ones), a row has ``size_mm`` but
        ``size_variable`` is not given or not in the outcomes, or units disagree with the
        outcome variable's ``units`` attribute.
    """
    if "status" not in outcomes:
        raise ValidationError("outcomes: variable 'status' is required (0 = ok)")
    rows_of_role = rows_with_role(comparators, role)
    arms = [str(a) for a in outcomes["arm"].values]
    weights = patient_weights(outcomes, cohort)
    n_patients = outcomes.sizes["patient"]
    cohort_vars = (
        {
            str(v): np.asarray(cohort[v].values)
            for v in cohort.data_vars
            if cohort[v].dims == ("patient",) and cohort.sizes["patient"] == n_patients
        }
        if cohort is not None
        else {}
    )
    needed = {"status", *([size_variable] if size_variable else [])}
    needed |= set(rows_of_role["quantity"])
    for text in rows_of_role.get("where", []):
        needed |= where_variables(text)
    projections: dict[float, dict[str, np.ndarray] | str] = {}
    u_num = dict(u_num or {})
    u_input = dict(u_input or {})
    rows = []
    for row in rows_of_role.to_dict("records"):
        days = float(row["timepoint_days"])
        if days not in projections:
            ds = outcomes if at_timepoint is None else at_timepoint(days)
            projections[days] = ds if isinstance(ds, str) else _arrays(ds, needed)
            if not isinstance(ds, str):
                units = {str(v): ds[v].attrs.get("units") for v in ds.data_vars}
        out = {c: row.get(c, np.nan) for c in VALIDATION_COLUMNS if c in row}
        out.update(observed=row["value"], k=k)
        projected = projections[days]
        if isinstance(projected, str):
            rows.append({**out, "verdict": "excluded", "note": projected})
            continue
        q = row["quantity"]
        unit_attr = units.get(q)
        if (
            row["statistic"] != "proportion"
            and unit_attr is not None
            and _norm_unit(unit_attr) != _norm_unit(row["unit"])
        ):
            raise ValidationError(
                f"comparator id={row['id']}: unit '{row['unit']}' differs from outcomes['{q}'] "
                f"units '{unit_attr}'"
            )
        values, w = selected_values(
            projected, arms, row, cohort_vars, weights, size_variable=size_variable
        )
        pred = predict_statistic(values, w, row, conf=conf)
        u_d, how = comparator_uncertainty(row)
        notes = [how]
        un = float(np.hypot(u_num.get(q, 0.0), pred.se if np.isfinite(pred.se) else 0.0))
        ui = float(u_input.get(q, 0.0))
        if q not in u_input:
            notes.append("u_input not supplied (taken as 0)")
        ce = comparison_error(pred.value, row["value"], u_num=un, u_input=ui, u_D=u_d, k=k)
        if pred.n == 0:
            verdict = "no prediction"
            notes.append("no valid virtual patient in this stratum")
        else:
            verdict = "consistent" if bool(ce.consistent) else "inconsistent"
        obs_lo, obs_hi = row["ci_low"], row["ci_high"]
        if not (np.isfinite(obs_lo) and np.isfinite(obs_hi)) and u_d > 0:
            obs_lo, obs_hi = row["value"] - 1.959964 * u_d, row["value"] + 1.959964 * u_d
        spread: dict[str, Any] = {}
        if row["statistic"] in ("mean", "median") and np.isfinite(row["sd"]) and pred.n > 1:
            spread["area_metric"] = area_metric(
                values, stats.norm(row["value"], row["sd"]), pred_weights=w
            )
            n_obs = row["n"] if np.isfinite(row["n"]) and row["n"] > 1 else np.inf
            sd_u = np.hypot(pred.sd_se, row["sd"] / np.sqrt(2.0 * (n_obs - 1.0)))
            z = stats.norm.ppf(0.5 + conf / 2.0)
            spread.update(
                observed_sd=row["sd"],
                predicted_sd=pred.sd,
                predicted_sd_low=pred.sd - z * pred.sd_se,
                predicted_sd_high=pred.sd + z * pred.sd_se,
                sd_verdict="consistent" if abs(pred.sd - row["sd"]) <= k * sd_u else "inconsistent",
            )
        E = float(ce.E)
        rows.append(
            {
                **out,
                "observed_low": obs_lo,
                "observed_high": obs_hi,
                "predicted": pred.value,
                "predicted_low": pred.low,
                "predicted_high": pred.high,
                "n_virtual": pred.n,
                "n_effective": pred.n_effective,
                "E": E,
                "rel_error_pct": 100.0 * E / row["value"] if row["value"] != 0 else np.nan,
                "u_num": un,
                "u_input": ui,
                "u_D": u_d,
                "u_val": float(ce.u_val),
                "verdict": verdict,
                **spread,
                "note": "; ".join(notes),
            }
        )
    return pd.DataFrame(rows, columns=list(VALIDATION_COLUMNS))


def validation_summary(
    table: pd.DataFrame, quantities_of_interest: list[str] | None = None
) -> dict[str, float]:
    """Scalar evidence from a :func:`validate` table, for a credibility plan.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`validate` (validation rows only).
    quantities_of_interest : list of str, optional
        Outcome variables the decision rests on; enables ``qoi_coverage``.

    Returns
    -------
    dict
        ``n_comparators`` (rows compared, excluded ones not counted); ``n_excluded``;
        ``n_studies`` (distinct studies compared); ``n_patients`` (sum of the compared rows'
        published n, the largest n counted once per study); ``fraction_consistent`` (among
        rows with a prediction); ``fraction_spread_consistent`` (among rows with a published
        SD); ``max_abs_rel_error_pct``, ``median_abs_rel_error_pct``; ``fraction_with_u_D``;
        ``max_area_metric`` (NaN if none); ``n_strata`` (distinct arm × size × where
        combinations compared); ``qoi_coverage`` (share of the quantities of interest with at
        least one predicted comparator; NaN if none given).

    Raises
    ------
    ValidationError
        If the table holds a row whose role is not ``validation``: calibration data never
        count as validation evidence.
    """
    if "role" in table and (table["role"] != "validation").any():
        bad = table.loc[table["role"] != "validation", "id"].tolist()
        raise ValidationError(
            f"rows {bad} are not validation rows; calibration data never count as validation"
        )
    compared = table[table["verdict"] != "excluded"]
    has_pred = compared["verdict"] != "no prediction"
    rel = compared.loc[has_pred, "rel_error_pct"].abs()
    am = compared["area_metric"].dropna()
    spread = compared["sd_verdict"].dropna()
    strata = set(
        zip(
            compared["arm"],
            compared["size_mm"].fillna(-1.0),
            compared["where"].fillna(""),
            strict=True,
        )
    )
    coverage = np.nan
    if quantities_of_interest:
        covered = set(compared.loc[has_pred, "quantity"])
        coverage = float(np.mean([q in covered for q in quantities_of_interest]))
    n_by_study = compared.groupby("study")["n"].max() if "n" in compared else pd.Series()
    return {
        "n_comparators": int(len(compared)),
        "n_excluded": int(len(table) - len(compared)),
        "n_studies": int(compared["study"].nunique()) if "study" in compared else 0,
        "n_patients": float(n_by_study.fillna(0).sum()),
        "fraction_consistent": float((compared.loc[has_pred, "verdict"] == "consistent").mean())
        if has_pred.any()
        else np.nan,
        "fraction_spread_consistent": float((spread == "consistent").mean())
        if len(spread)
        else np.nan,
        "max_abs_rel_error_pct": float(rel.max()) if len(rel) else np.nan,
        "median_abs_rel_error_pct": float(rel.median()) if len(rel) else np.nan,
        "fraction_with_u_D": float((compared["u_D"] > 0).mean()) if len(compared) else np.nan,
        "max_area_metric": float(am.max()) if len(am) else np.nan,
        "n_strata": len(strata),
        "qoi_coverage": coverage,
    }
