"""Validation against clinical comparators: V&V 20 comparison error, area metric, exact intervals.

The virtual trial predicts population-level quantities (mean gradient, EOA, share of patients
with severe prosthesis-patient mismatch, …) that are compared with published clinical figures
(the *comparators*, kept as CSV files with a citation on every row). This module reads
xarray Datasets and pandas DataFrames only; it does not import the simulation packages.

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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from .comparators import POOLED_ARM, event_of, rows_with_role, select, where_variables
from .errors import ValidationError
from .statistics import kish_n, proportion_interval

__all__ = [
    "ComparisonError",
    "Prediction",
    "ValidationError",
    "applicability",
    "applicability_summary",
    "area_metric",
    "comparator_uncertainty",
    "comparison_error",
    "kish_n",
    "patient_weights",
    "predict_statistic",
    "proportion_interval",
    "selected_values",
    "validate",
    "validation_summary",
]


@dataclass(frozen=True)
class ComparisonError:
    """ASME V&V 20 comparison error and validation uncertainty.

    Attributes
    ----------
    E : ndarray
        Comparison error ``S - D`` (units of the quantity).
    u_val : ndarray
        Validation standard uncertainty ``sqrt(u_num**2 + u_input**2 + u_D**2)``.
    k : float
        Coverage factor of the model-error interval.
    lower, upper : ndarray
        Interval that contains the model-form error ``delta_model``: ``E -/+ k u_val``.
    """

    E: NDArray[np.float64]
    u_val: NDArray[np.float64]
    k: float
    lower: NDArray[np.float64]
    upper: NDArray[np.float64]

    @property
    def consistent(self) -> NDArray[np.bool_]:
        """``|E| <= k u_val``: the model error cannot be told apart from the uncertainties."""
        return np.abs(self.E) <= self.k * self.u_val


def comparison_error(
    S: ArrayLike,
    D: ArrayLike,
    *,
    u_num: ArrayLike = 0.0,
    u_input: ArrayLike = 0.0,
    u_D: ArrayLike = 0.0,
    k: float = 2.0,
) -> ComparisonError:
    """Comparison error ``E = S - D`` and validation uncertainty (ASME V&V 20-2009, section 2).

    Parameters
    ----------
    S : array_like
        Simulation result (any units).
    D : array_like
        Experimental / clinical comparator value (same units as ``S``).
    u_num : array_like, default 0
        Standard uncertainty of the numerical solution (discretization, iteration, sampling).
    u_input : array_like, default 0
        Standard uncertainty of ``S`` propagated from uncertain model inputs.
    u_D : array_like, default 0
        Standard uncertainty of the comparator value.
    k : float, default 2.0
        Coverage factor of the interval ``E -/+ k u_val`` (2 ≈ 95 % for a normal error).

    Returns
    -------
    ComparisonError
        ``E``, ``u_val``, ``k`` and the interval bounding the model-form error.

    Raises
    ------
    ValidationError
        If an uncertainty is negative or ``k <= 0``.

    Examples
    --------
    >>> ce = comparison_error(10.0, 8.6, u_num=0.3, u_input=0.4, u_D=1.2)
    >>> round(float(ce.E), 2), round(float(ce.u_val), 2)
    (1.4, 1.3)
    """
    if not k > 0:
        raise ValidationError(f"coverage factor k must be > 0; got {k!r}")
    u = [np.asarray(x, dtype=float) for x in (u_num, u_input, u_D)]
    for name, arr in zip(("u_num", "u_input", "u_D"), u, strict=True):
        if np.any(arr < 0):
            raise ValidationError(f"{name} must be >= 0 (a standard uncertainty); got {arr!r}")
    E = np.asarray(S, dtype=float) - np.asarray(D, dtype=float)
    u_val = np.sqrt(u[0] ** 2 + u[1] ** 2 + u[2] ** 2)
    E, u_val = np.broadcast_arrays(E, u_val)
    return ComparisonError(E=E, u_val=u_val, k=float(k), lower=E - k * u_val, upper=E + k * u_val)


# --------------------------------------------------------------------------- area metric


def _clean_samples(x: ArrayLike, w: ArrayLike | None, name: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.ravel(np.asarray(x, dtype=float))
    w = np.ones_like(x) if w is None else np.ravel(np.asarray(w, dtype=float))
    if w.shape != x.shape:
        raise ValidationError(f"{name}: weights shape {w.shape} differs from samples {x.shape}")
    keep = np.isfinite(x) & np.isfinite(w) & (w > 0)
    if np.any(w[np.isfinite(w)] < 0):
        raise ValidationError(f"{name}: weights must be >= 0")
    x, w = x[keep], w[keep]
    if x.size == 0:
        raise ValidationError(f"{name}: no finite samples with positive weight")
    order = np.argsort(x, kind="stable")
    return x[order], w[order] / w.sum()


def _ecdf(x_sorted: np.ndarray, w_sorted: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Right-continuous weighted ECDF of sorted samples evaluated at ``at``."""
    cw = np.concatenate(([0.0], np.cumsum(w_sorted)))
    return cw[np.searchsorted(x_sorted, at, side="right")]


def area_metric(
    pred_samples: ArrayLike,
    obs: ArrayLike | Any,
    *,
    pred_weights: ArrayLike | None = None,
    obs_weights: ArrayLike | None = None,
    support: tuple[float, float] | None = None,
    n_grid: int = 4096,
) -> float:
    """Area between the predicted and the observed cumulative distribution functions.

    ``d(F_pred, F_obs) = ∫ |F_pred(x) - F_obs(x)| dx`` (Ferson et al. 2008), i.e. the
    1-Wasserstein distance; it has the units of the quantity and is 0 only for identical
    distributions. The prediction enters as (optionally weighted) samples, the observation as
    samples, a frozen ``scipy.stats`` distribution (``.cdf`` and ``.ppf``), or a plain CDF
    callable together with ``support``.

    Parameters
    ----------
    pred_samples : array_like
        Predicted values (e.g. one per virtual patient); NaNs are ignored.
    obs : array_like or mapping or scipy frozen distribution or callable
        Observed samples; ``{"mean": m, "sd": s}`` for a normal observation (a published
        mean ± SD); a distribution object with ``cdf``/``ppf``; or a CDF callable.
    pred_weights, obs_weights : array_like, optional
        Non-negative sample weights (e.g. cohort ``sampling_weight``); default equal weights.
    support : (float, float), optional
        Integration range, required when ``obs`` is a plain callable; default the
        ``1e-9``/``1 - 1e-9`` quantiles of ``obs`` joined with the predicted sample range.
    n_grid : int, default 4096
        Number of quantile nodes of a continuous ``obs`` used in the integration grid.

    Returns
    -------
    float
        Area metric, in the units of the samples.

    Raises
    ------
    ValidationError
        If there are no finite samples, weights are invalid, or ``support`` is needed but missing.

    References
    ----------
    Ferson, Oberkampf, Ginzburg (2008), doi:10.1016/j.cma.2007.07.030.

    Examples
    --------
    A point prediction at the mean of a normal observation: area = sigma * sqrt(2 / pi).

    >>> round(area_metric([0.0], stats.norm(0.0, 2.0)), 4)
    1.5958
    """
    xp, wp = _clean_samples(pred_samples, pred_weights, "pred_samples")
    if isinstance(obs, Mapping):
        if not {"mean", "sd"} <= set(obs) or not float(obs["sd"]) > 0:
            raise ValidationError(
                f"area_metric: obs mapping must have 'mean' and 'sd' > 0; got {dict(obs)!r}"
            )
        obs = stats.norm(float(obs["mean"]), float(obs["sd"]))
    cdf: Callable[[np.ndarray], np.ndarray] | None = None
    if hasattr(obs, "cdf"):
        cdf = obs.cdf
    elif callable(obs):
        cdf = obs
    if cdf is None:
        xo, wo = _clean_samples(obs, obs_weights, "obs")
        grid = np.union1d(xp, xo)
        fp = _ecdf(xp, wp, grid[:-1])
        fo = _ecdf(xo, wo, grid[:-1])
        return float(np.sum(np.abs(fp - fo) * np.diff(grid)))

    if support is None:
        if not hasattr(obs, "ppf"):
            raise ValidationError(
                "area_metric: obs is a plain CDF callable; pass support=(low, high)"
            )
        lo, hi = obs.ppf([1e-9, 1.0 - 1e-9])
        nodes = obs.ppf(np.linspace(1e-9, 1.0 - 1e-9, n_grid))
    else:
        lo, hi = support
        nodes = np.linspace(lo, hi, n_grid)
    lo, hi = min(lo, xp[0]), max(hi, xp[-1])
    grid = np.union1d(np.union1d(nodes, xp), [lo, hi])
    grid = grid[(grid >= lo) & (grid <= hi)]
    # composite Gauss-Legendre (4 nodes) on every interval between consecutive grid points; the
    # predicted ECDF is constant on each interval, so only the observed CDF varies there.
    gl_x, gl_w = np.polynomial.legendre.leggauss(4)
    a, b = grid[:-1], grid[1:]
    half = 0.5 * (b - a)
    mid = 0.5 * (a + b)
    fp = _ecdf(xp, wp, a)
    total = 0.0
    for xi, wi in zip(gl_x, gl_w, strict=True):
        total += np.sum(wi * half * np.abs(fp - cdf(mid + half * xi)))
    return float(total)


# ----------------------------------------------------------------------------- validate


def _norm_unit(u: str) -> str:
    return (
        str(u).replace("²", "2").replace("^", "").replace(" ", "").replace("·", "").lower().strip()
    )


def patient_weights(outcomes: xr.Dataset, cohort: xr.Dataset | None) -> np.ndarray:
    """Sampling weight of every patient of ``outcomes`` (1 without a cohort or weights).

    Raises
    ------
    ValidationError
        If the cohort's weights do not match the outcomes' patients.
    """
    n = outcomes.sizes["patient"]
    if cohort is None or "sampling_weight" not in cohort:
        return np.ones(n)
    w = cohort["sampling_weight"]
    if "patient" in outcomes.coords and "patient" in w.coords:
        w = w.sel(patient=outcomes["patient"].values)
    w = np.asarray(w.values, dtype=float)
    if w.shape != (n,):
        raise ValidationError(
            f"cohort sampling_weight has shape {w.shape}; outcomes have {n} patients"
        )
    return w


def _weighted_quantile(x: np.ndarray, w: np.ndarray, q: ArrayLike) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    xs, ws = x[order], w[order]
    cw = np.cumsum(ws) / ws.sum()
    idx = np.searchsorted(cw, np.asarray(q, dtype=float), side="left")
    return xs[np.clip(idx, 0, xs.size - 1)]


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
        centre = float(_weighted_quantile(values, weights, 0.5))
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


def selected_values(
    arrays: Mapping[str, np.ndarray],
    arms: Sequence[str],
    row: Mapping[str, Any],
    cohort_vars: Mapping[str, np.ndarray],
    weights: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Values and weights of the virtual patients (or elements) a comparator row selects.

    Outcome variables may carry extra dims after ``(arm, patient)``, e.g. ``lesion``: when
    the row's quantity or a variable its ``where`` clause names has them, the unit of the
    row is the element (patient × lesion) rather than the patient. Patient-level outcomes,
    cohort variables and weights are then broadcast along the extra dims, the arrays
    flattened to one row per element, and elements with a non-finite value (absent lesion
    slots, NaN) dropped like failed patients. So ``ffr`` with
    ``where = "ds_visual_pct>=50 & n_vessels_indicated>=2"`` selects the lesions read at
    least 50 % of patients with two or more such arteries, each weighted by its patient's
    sampling weight.

    Parameters
    ----------
    arrays : mapping of str to ndarray, shape (arm, patient[, extra dims])
        Outcome variables (at least ``status``, the row's quantity and the variables its
        ``size_mm`` / ``where`` use).
    arms : sequence of str
        Arm names in the order of the first axis.
    row : mapping
        The comparator row: ``arm`` (an arm or ``pooled``), ``quantity``, ``size_mm``,
        ``where``.
    cohort_vars : mapping of str to ndarray, shape (patient,)
        Cohort variables a ``where`` clause may name.
    weights : ndarray, shape (patient,)

    Returns
    -------
    (values, weights) : ndarray, ndarray
        One entry per selected patient (or element) with ``status == 0`` and a valid value
        (``>= 0`` for integer classes).

    Raises
    ------
    ValidationError
        For an unknown arm, quantity or ``where`` variable (the message lists what exists),
        or variables of the row whose extra dims differ.

    Examples
    --------
    A lesion-level quantity selected by a lesion-level and a patient-level variable:

    >>> ffr = np.array([[[0.7, 0.9], [0.85, np.nan]]])  # (arm, patient, lesion)
    >>> ds = np.array([[[60.0, 40.0], [55.0, np.nan]]])
    >>> arrays = {"ffr": ffr, "ds": ds, "status": np.zeros((1, 2), np.int8)}
    >>> row = {"id": "x", "quantity": "ffr", "arm": "a", "where": "ds>=50 & age>=60"}
    >>> values, w = selected_values(arrays, ["a"], row, {"age": np.array([70, 50])},
    ...                             np.array([1.0, 2.0]))
    >>> values.tolist(), w.tolist()
    ([0.7], [1.0])
    """
    where = f"comparator id={row['id']}"
    q, arm = row["quantity"], row["arm"]
    if q not in arrays:
        raise ValidationError(
            f"{where}: quantity '{q}' not in outcomes; available: {sorted(arrays)}"
        )
    if arm != POOLED_ARM and arm not in arms:
        raise ValidationError(
            f"{where}: arm '{arm}' not in outcomes; allowed: {list(arms) + [POOLED_ARM]}"
        )
    clause = str(row.get("where") or "").strip()
    size = row.get("size_mm", np.nan)
    by_size = size is not None and np.isfinite(size)
    used = {q} | (where_variables(clause) if clause else set())
    used |= {"valve_size_mm"} if by_size else set()
    extra = {np.shape(arrays[v])[2:] for v in used if v in arrays and np.ndim(arrays[v]) > 2}
    if len(extra) > 1:
        raise ValidationError(
            f"{where}: variables {sorted(used)} have different extra dims {sorted(extra)}; "
            "a row can broadcast patient-level variables along one set of extra dims only"
        )
    shape = (len(weights), *(extra.pop() if extra else ()))

    def rows(x: np.ndarray) -> np.ndarray:
        """One entry per patient (or element): patient-level values broadcast, flattened."""
        x = np.asarray(x)
        return np.broadcast_to(x.reshape(x.shape + (1,) * (len(shape) - x.ndim)), shape).ravel()

    idx = list(range(len(arms))) if arm == POOLED_ARM else [list(arms).index(arm)]
    values, chosen_w = [], []
    for a in idx:
        vals = rows(np.asarray(arrays[q][a], dtype=float))
        ok = (rows(arrays["status"][a]) == 0) & np.isfinite(vals)
        if np.issubdtype(np.asarray(arrays[q]).dtype, np.integer):
            ok &= vals >= 0
        if by_size:
            if "valve_size_mm" not in arrays:
                raise ValidationError(f"{where}: size_mm given but outcomes lack 'valve_size_mm'")
            ok &= rows(np.asarray(arrays["valve_size_mm"][a], dtype=float)) == size
        if clause:
            variables = {**cohort_vars, **{k: v[a] for k, v in arrays.items()}}
            variables = {k: rows(v) if k in used else v for k, v in variables.items()}
            try:
                ok &= select(clause, variables, vals.size)
            except KeyError as exc:
                raise ValidationError(f"{where}: {exc.args[0]}") from None
        values.append(vals[ok])
        chosen_w.append(rows(weights)[ok])
    return np.concatenate(values), np.concatenate(chosen_w)


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
) -> pd.DataFrame:
    """Compare virtual-trial predictions with the comparator rows of one role.

    Only rows whose ``role`` is ``role`` are compared: with the default, calibration rows
    never enter a validation table. For each row the population statistic of the virtual
    cohort (:func:`predict_statistic`) is computed over the patients of the row's arm
    (``pooled``: all arms), valve size and ``where`` selection with ``status == 0`` and a
    valid value, weighted by the cohort ``sampling_weight`` (Kish effective n), from the
    outcomes *at the row's time point*: ``at_timepoint(days)`` returns the outcomes projected
    to that time, or a string giving why the model cannot predict it (the row is then
    ``excluded`` with that reason). A row on a variable with extra dims after
    ``(arm, patient)`` (e.g. ``lesion``) compares elements, not patients
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
        dims ``(arm, patient)``) and, for rows with ``size_mm``, ``valve_size_mm``.
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

    Returns
    -------
    pandas.DataFrame
        One row per comparator of the role, columns :data:`VALIDATION_COLUMNS`; ``verdict``
        is one of ``consistent``, ``inconsistent``, ``no prediction``, ``excluded``.

    Raises
    ------
    ValidationError
        If a comparator's quantity, arm or ``where`` variable is not in the outcomes or
        cohort (message lists the available ones), or units disagree with the outcome
        variable's ``units`` attribute.
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
    needed = {"status", "valve_size_mm"} | set(rows_of_role["quantity"])
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
        values, w = selected_values(projected, arms, row, cohort_vars, weights)
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
        ``max_area_metric`` (NaN if none); ``n_strata`` (distinct arm × valve-size × where
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


# --------------------------------------------------------------------------- applicability


def _parse_where(cond: str, cohort: xr.Dataset, label: str) -> np.ndarray:
    var, sep, code = cond.partition("=")
    var, code = var.strip(), code.strip()
    if not sep or var not in cohort:
        raise ValidationError(
            f"{label}: restriction '{cond}' must be '<cohort variable>=<code>'; "
            f"cohort variables: {sorted(cohort.data_vars)}"
        )
    try:
        value = float(code)
    except ValueError as exc:
        raise ValidationError(f"{label}: restriction '{cond}': '{code}' is not a number") from exc
    return np.asarray(cohort[var].values, dtype=float) == value


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
        "where": "<var>=<code>" (optional), "citation"}}``, e.g. one entry of
        :func:`load_populations`. A plain ``{variable: {...}}`` dict works too.
    on_missing : {"raise", "skip"}, default "raise"
        What to do with a characteristic whose variable is not in the cohort: raise, or keep
        a row with NaN virtual statistics and ``note = "not in cohort"``.

    Returns
    -------
    pandas.DataFrame
        Columns ``characteristic, variable, where, virtual_mean, virtual_sd,
        comparator_mean, comparator_sd, smd, range_low, range_high, fraction_within, n,
        citation, note``. Proportions appear in the mean columns.

    Raises
    ------
    ValidationError
        If a variable or restriction is not in the cohort (message lists available variables).
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
            mask = _parse_where(where, cohort, label)
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
            # binary characteristic coded 0/1 (e.g. sex, 1 = male)
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
    columns = [
        "characteristic", "variable", "where", "virtual_mean", "virtual_sd", "comparator_mean",
        "comparator_sd", "smd", "range_low", "range_high", "fraction_within", "n", "citation",
        "note",
    ]  # fmt: skip
    return pd.DataFrame(out, columns=columns)
