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

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from numpy.typing import ArrayLike, NDArray
from scipy import stats

__all__ = [
    "ComparatorError",
    "ComparisonError",
    "ValidationError",
    "applicability",
    "applicability_summary",
    "area_metric",
    "comparison_error",
    "load_comparators",
    "load_populations",
    "proportion_interval",
    "validate",
    "validation_summary",
]

#: Columns every comparator file must have (a non-empty value on every row).
REQUIRED_COLUMNS = ("id", "quantity", "statistic", "arm", "value", "unit", "citation")
#: Optional columns; missing ones are added as empty.
OPTIONAL_COLUMNS = (
    "category",
    "device",
    "size_mm",
    "sd",
    "ci_low",
    "ci_high",
    "n",
    "timepoint",
    "population",
)
#: Allowed values of the ``statistic`` column.
STATISTICS = ("mean", "median", "proportion")
#: Allowed units of a proportion (values in percent are converted to fractions on load).
PROPORTION_UNITS = ("%", "fraction")
#: ``arm`` value that pools every arm of the outcomes (a 1:1 device mix in a crossover trial).
POOLED_ARM = "pooled"


class ValidationError(ValueError):
    """Invalid input to a validation calculation (shapes, arms, quantities, intervals)."""


class ComparatorError(ValueError):
    """A comparator or population file is malformed; the message names file, row and column."""


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


# ------------------------------------------------------------------- proportion interval


def proportion_interval(
    k: ArrayLike, n: ArrayLike, *, conf: float = 0.95
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Clopper–Pearson exact two-sided confidence interval of a binomial proportion.

    ``lower = B^-1(alpha/2; k, n - k + 1)``, ``upper = B^-1(1 - alpha/2; k + 1, n - k)``
    with ``B^-1`` the beta quantile function, ``alpha = 1 - conf``; ``lower = 0`` when
    ``k = 0`` and ``upper = 1`` when ``k = n`` (Clopper & Pearson 1934). Non-integer ``k``,
    ``n`` (Kish effective counts of weighted data) are accepted.

    Parameters
    ----------
    k : array_like
        Number of events, ``0 <= k <= n``.
    n : array_like
        Number of trials, ``n > 0``.
    conf : float, default 0.95
        Confidence level in (0, 1).

    Returns
    -------
    (ndarray, ndarray)
        Lower and upper bounds (fractions).

    Raises
    ------
    ValidationError
        If ``conf`` is outside (0, 1), ``n <= 0`` or ``k`` outside ``[0, n]``.

    Examples
    --------
    >>> lo, hi = proportion_interval(0, 10)
    >>> float(lo), round(float(hi), 4)
    (0.0, 0.3085)
    """
    if not 0.0 < conf < 1.0:
        raise ValidationError(f"conf must be in (0, 1); got {conf!r}")
    k_arr, n_arr = np.broadcast_arrays(np.asarray(k, dtype=float), np.asarray(n, dtype=float))
    if np.any(~(n_arr > 0)):
        raise ValidationError(f"n must be > 0; got {n!r}")
    if np.any((k_arr < 0) | (k_arr > n_arr) | ~np.isfinite(k_arr)):
        raise ValidationError(f"k must satisfy 0 <= k <= n; got k={k!r}, n={n!r}")
    alpha = 1.0 - conf
    with np.errstate(invalid="ignore", divide="ignore"):
        lower = stats.beta.ppf(alpha / 2.0, k_arr, n_arr - k_arr + 1.0)
        upper = stats.beta.ppf(1.0 - alpha / 2.0, k_arr + 1.0, n_arr - k_arr)
    lower = np.where(k_arr <= 0, 0.0, lower)
    upper = np.where(k_arr >= n_arr, 1.0, upper)
    return np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)


# ----------------------------------------------------------------------------- comparators


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v)) or str(v).strip() == ""


def _data_lines(path: Path) -> np.ndarray:
    """1-based line numbers of the data rows of a CSV whose comment lines start with '#'."""
    lines = path.read_text(encoding="utf-8").splitlines()
    content = [i + 1 for i, t in enumerate(lines) if t.strip() and not t.lstrip().startswith("#")]
    return np.asarray(content[1:], dtype=int)


def load_comparators(path: str | Path) -> pd.DataFrame:
    """Read a comparator CSV file and check it.

    Parameters
    ----------
    path : str or Path
        CSV file with the columns ``id, quantity, statistic, arm, value, unit, citation``
        (required on every row) and optionally ``category`` (integer code counted by a
        proportion), ``device``, ``size_mm``, ``sd``, ``ci_low``, ``ci_high``, ``n``,
        ``timepoint``, ``population``. ``quantity`` names an outcomes variable;
        ``statistic`` is one of ``mean``, ``median``, ``proportion``; ``arm`` is an outcomes
        arm name or ``pooled``; proportions are given in ``%`` or ``fraction``.

    Returns
    -------
    pandas.DataFrame
        One row per comparator, indexed by position; proportions (and their ``sd``/``ci``)
        converted to fractions with ``unit = "fraction"``; ``source_row`` holds the 1-based
        line number in the file.

    Raises
    ------
    ComparatorError
        Naming the file, the line and the column, when a required column is missing, a
        required value (notably the citation) is empty, an ``id`` repeats, a number does not
        parse, ``statistic`` or a proportion unit is not an allowed value, or a proportion has
        no ``category``.
    """
    path = Path(path)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, comment="#")
    except (OSError, pd.errors.ParserError) as exc:
        raise ComparatorError(f"{path}: cannot read comparator CSV: {exc}") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    if missing:
        raise ComparatorError(
            f"{path}: missing required column(s) {missing}; required: {list(REQUIRED_COLUMNS)}"
        )
    unknown = sorted(set(raw.columns) - set(REQUIRED_COLUMNS) - set(OPTIONAL_COLUMNS))
    if unknown:
        raise ComparatorError(
            f"{path}: unknown column(s) {unknown}; allowed: "
            f"{list(REQUIRED_COLUMNS) + list(OPTIONAL_COLUMNS)}"
        )
    for col in OPTIONAL_COLUMNS:
        if col not in raw.columns:
            raw[col] = ""
    raw = raw.map(lambda v: v.strip() if isinstance(v, str) else v)
    line = _data_lines(path)
    raw["source_row"] = line
    for col in REQUIRED_COLUMNS:
        empty = raw[col] == ""
        if empty.any():
            i = int(np.flatnonzero(empty.to_numpy())[0])
            raise ComparatorError(
                f"{path}: row {line[i]} (id={raw['id'].iat[i] or '?'}): column '{col}' is empty; "
                f"every comparator row needs {col}"
            )
    dup = raw["id"].duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise ComparatorError(f"{path}: row {line[i]}: duplicate id '{raw['id'].iat[i]}'")
    bad_stat = ~raw["statistic"].isin(STATISTICS)
    if bad_stat.any():
        i = int(np.flatnonzero(bad_stat.to_numpy())[0])
        raise ComparatorError(
            f"{path}: row {line[i]} (id={raw['id'].iat[i]}): column 'statistic' is "
            f"'{raw['statistic'].iat[i]}'; allowed: {list(STATISTICS)}"
        )
    out = raw.copy()
    for col in ("value", "size_mm", "sd", "ci_low", "ci_high", "n", "category"):
        num = pd.to_numeric(raw[col].replace("", np.nan), errors="coerce")
        bad = num.isna() & (raw[col] != "")
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise ComparatorError(
                f"{path}: row {line[i]} (id={raw['id'].iat[i]}): column '{col}' is "
                f"'{raw[col].iat[i]}', not a number"
            )
        out[col] = num.astype(float)
    is_prop = out["statistic"] == "proportion"
    bad_unit = is_prop & ~out["unit"].isin(PROPORTION_UNITS)
    if bad_unit.any():
        i = int(np.flatnonzero(bad_unit.to_numpy())[0])
        raise ComparatorError(
            f"{path}: row {line[i]} (id={out['id'].iat[i]}): proportion unit is "
            f"'{out['unit'].iat[i]}'; allowed: {list(PROPORTION_UNITS)}"
        )
    no_cat = is_prop & out["category"].isna()
    if no_cat.any():
        i = int(np.flatnonzero(no_cat.to_numpy())[0])
        raise ComparatorError(
            f"{path}: row {line[i]} (id={out['id'].iat[i]}): column 'category' is empty; a "
            "proportion needs the integer code it counts (e.g. 2 for severe PPM)"
        )
    pct = is_prop & (out["unit"] == "%")
    for col in ("value", "sd", "ci_low", "ci_high"):
        out.loc[pct, col] = out.loc[pct, col] / 100.0
    out.loc[pct, "unit"] = "fraction"
    bad_frac = is_prop & ~out["value"].between(0.0, 1.0)
    if bad_frac.any():
        i = int(np.flatnonzero(bad_frac.to_numpy())[0])
        raise ComparatorError(
            f"{path}: row {line[i]} (id={out['id'].iat[i]}): proportion value outside [0, 1]"
        )
    out.attrs["source"] = str(path)
    return out.reset_index(drop=True)


def load_populations(path: str | Path) -> dict[str, dict[str, dict[str, float]]]:
    """Read comparator-population characteristics for :func:`applicability`.

    Parameters
    ----------
    path : str or Path
        CSV with columns ``population, variable, citation`` (required) and any of ``mean``,
        ``sd``, ``min``, ``max``, ``proportion`` (numbers), ``where`` (optional restriction
        ``<cohort variable>=<code>``, e.g. ``sex=0``).

    Returns
    -------
    dict
        ``{population: {key: {"variable", "mean", "sd", "min", "max", "proportion", "where",
        "citation"}}}``; ``key`` is the variable name, suffixed by ``[where]`` if restricted.

    Raises
    ------
    ComparatorError
        Naming file, line and column for a missing column, empty citation, unparsable number
        or a row without any of mean / min / max / proportion.
    """
    path = Path(path)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, comment="#")
    except (OSError, pd.errors.ParserError) as exc:
        raise ComparatorError(f"{path}: cannot read population CSV: {exc}") from exc
    required = ("population", "variable", "citation")
    numeric = ("mean", "sd", "min", "max", "proportion")
    missing = [c for c in required if c not in raw.columns]
    if missing:
        raise ComparatorError(f"{path}: missing required column(s) {missing}")
    result: dict[str, dict[str, dict[str, Any]]] = {}
    lines = _data_lines(path)
    for line, row in zip(lines, raw.to_dict("records"), strict=True):
        for col in required:
            if str(row[col]).strip() == "":
                raise ComparatorError(f"{path}: row {line}: column '{col}' is empty")
        entry: dict[str, Any] = {"variable": row["variable"].strip()}
        for col in numeric:
            text = str(row.get(col, "")).strip()
            try:
                entry[col] = float(text) if text else np.nan
            except ValueError as exc:
                raise ComparatorError(
                    f"{path}: row {line}: column '{col}' is '{text}', not a number"
                ) from exc
        if all(np.isnan(entry[c]) for c in ("mean", "min", "max", "proportion")):
            raise ComparatorError(
                f"{path}: row {line}: give at least one of mean, min, max, proportion"
            )
        entry["where"] = str(row.get("where", "")).strip()
        entry["citation"] = row["citation"].strip()
        key = entry["variable"] + (f"[{entry['where']}]" if entry["where"] else "")
        result.setdefault(row["population"].strip(), {})[key] = entry
    return result


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


def _kish_n(w: np.ndarray) -> float:
    s = w.sum()
    return float(s * s / np.sum(w * w)) if s > 0 else 0.0


def _weighted_quantile(x: np.ndarray, w: np.ndarray, q: ArrayLike) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    xs, ws = x[order], w[order]
    cw = np.cumsum(ws) / ws.sum()
    idx = np.searchsorted(cw, np.asarray(q, dtype=float), side="left")
    return xs[np.clip(idx, 0, xs.size - 1)]


def _predict(
    values: np.ndarray, w: np.ndarray, statistic: str, category: float, conf: float
) -> tuple[float, float, float, float, float, int]:
    """Prediction, its interval, its standard error, the Kish n and the raw n."""
    n_raw = int(values.size)
    if n_raw == 0:
        return (np.nan,) * 5 + (0,)
    n_eff = _kish_n(w)
    wn = w / w.sum()
    if statistic == "proportion":
        event = (values == category).astype(float)
        p = float(np.sum(wn * event))
        lo, hi = proportion_interval(p * n_eff, n_eff, conf=conf)
        se = float(np.sqrt(p * (1.0 - p) / n_eff))
        return p, float(lo), float(hi), se, n_eff, n_raw
    mean = float(np.sum(wn * values))
    sd = float(np.sqrt(np.sum(wn * (values - mean) ** 2) * n_eff / max(n_eff - 1.0, 1.0)))
    se = sd / np.sqrt(n_eff)
    if statistic == "median":
        centre = float(_weighted_quantile(values, w, 0.5))
        se = 1.2533 * se  # asymptotic SE of a normal median, sqrt(pi/2) * sd / sqrt(n)
    else:
        centre = mean
    tq = stats.t.ppf(0.5 + conf / 2.0, max(n_eff - 1.0, 1.0))
    return centre, centre - tq * se, centre + tq * se, float(se), n_eff, n_raw


def _u_d(row: Mapping[str, Any]) -> tuple[float, str]:
    """Standard uncertainty of a comparator value and how it was obtained."""
    if np.isfinite(row["sd"]) and np.isfinite(row["n"]) and row["n"] > 0:
        return float(row["sd"] / np.sqrt(row["n"])), "sd/sqrt(n)"
    if np.isfinite(row["ci_low"]) and np.isfinite(row["ci_high"]):
        return float((row["ci_high"] - row["ci_low"]) / (2.0 * 1.959964)), "95% CI width/3.92"
    if row["statistic"] == "proportion" and np.isfinite(row["n"]) and row["n"] > 0:
        p = row["value"]
        return float(np.sqrt(p * (1.0 - p) / row["n"])), "binomial sqrt(p(1-p)/n)"
    return 0.0, "u_D not reported (taken as 0)"


def validate(
    outcomes: xr.Dataset,
    comparators: pd.DataFrame,
    cohort: xr.Dataset | None = None,
    *,
    u_num: Mapping[str, float] | None = None,
    u_input: Mapping[str, float] | None = None,
    k: float = 2.0,
    conf: float = 0.95,
) -> pd.DataFrame:
    """Compare virtual-trial predictions with every comparator row.

    For each row the population statistic of the virtual cohort is computed over patients with
    ``status == 0`` and a valid value (``>= 0`` for integer classes), in the comparator's arm
    (``pooled``: all arms together) and, when ``size_mm`` is given, among patients who received
    that valve size (``valve_size_mm``). Weighted by the cohort ``sampling_weight`` when a
    cohort is given (Kish effective n for the intervals).

    The prediction interval is the ``conf`` interval of the statistic: Student t for means,
    normal-approximation for medians, Clopper–Pearson for proportions. The V&V 20 comparison
    uses ``u_num = sqrt(u_num[quantity]**2 + SE_pred**2)`` (the Monte Carlo sampling error of
    the finite virtual cohort is a numerical error), ``u_input[quantity]`` (e.g. from UQ) and
    ``u_D`` from the comparator's ``sd``/``n``, CI, or binomial ``n``. The verdict is
    ``consistent`` when ``|E| <= k u_val``. The area metric (Ferson et al. 2008) is computed
    for ``mean`` rows that report a between-patient ``sd``, against ``Normal(value, sd)``.

    Parameters
    ----------
    outcomes : xarray.Dataset
        Dims ``(arm, patient)``; the comparator quantities, ``status`` (int8, 0 ok) and, for
        rows with ``size_mm``, ``valve_size_mm``.
    comparators : pandas.DataFrame
        As returned by :func:`load_comparators`.
    cohort : xarray.Dataset, optional
        Cohort with ``sampling_weight`` (dim ``patient``).
    u_num, u_input : mapping of str to float, optional
        Additional standard uncertainties per quantity (units of the quantity; proportions as
        fractions). Missing quantities count as 0.
    k : float, default 2.0
        Coverage factor for the verdict.
    conf : float, default 0.95
        Confidence level of the prediction interval.

    Returns
    -------
    pandas.DataFrame
        One row per comparator: ``id, quantity, statistic, arm, size_mm, timepoint, unit,
        observed, observed_low, observed_high, predicted, predicted_low, predicted_high,
        n_virtual, n_effective, E, rel_error_pct, u_num, u_input, u_D, u_val, k, verdict,
        area_metric, population, citation, note``.

    Raises
    ------
    ValidationError
        If a comparator's quantity or arm is not in ``outcomes`` (message lists the available
        ones), ``size_mm`` is used without ``valve_size_mm``, or units disagree with the
        outcome variable's ``units`` attribute.
    """
    if "status" not in outcomes:
        raise ValidationError("outcomes: variable 'status' is required (0 = ok)")
    # read every needed variable once (the outcomes may be a lazily opened zarr store)
    needed = {"status", "valve_size_mm"} | set(comparators["quantity"])
    available = sorted(str(v) for v in outcomes.data_vars)
    outcomes = outcomes[[v for v in outcomes.data_vars if v in needed]].load()
    arms = [str(a) for a in outcomes["arm"].values]
    weights = patient_weights(outcomes, cohort)
    u_num = dict(u_num or {})
    u_input = dict(u_input or {})
    rows = []
    for row in comparators.to_dict("records"):
        where = f"comparator id={row['id']}"
        q = row["quantity"]
        if q not in outcomes:
            raise ValidationError(
                f"{where}: quantity '{q}' not in outcomes; available: {available}"
            )
        arm = row["arm"]
        if arm != POOLED_ARM and arm not in arms:
            raise ValidationError(
                f"{where}: arm '{arm}' not in outcomes; allowed: {arms + [POOLED_ARM]}"
            )
        unit_attr = outcomes[q].attrs.get("units")
        if (
            row["statistic"] != "proportion"
            and unit_attr is not None
            and _norm_unit(unit_attr) != _norm_unit(row["unit"])
        ):
            raise ValidationError(
                f"{where}: unit '{row['unit']}' differs from outcomes['{q}'] units '{unit_attr}'"
            )
        sel = outcomes if arm == POOLED_ARM else outcomes.sel(arm=arm)
        vals = np.asarray(sel[q].values, dtype=float)
        ok = np.asarray(sel["status"].values) == 0
        ok &= np.isfinite(vals)
        if np.issubdtype(outcomes[q].dtype, np.integer):
            ok &= vals >= 0
        if np.isfinite(row["size_mm"]):
            if "valve_size_mm" not in sel:
                raise ValidationError(f"{where}: size_mm given but outcomes lack 'valve_size_mm'")
            ok &= np.asarray(sel["valve_size_mm"].values, dtype=float) == row["size_mm"]
        w = np.broadcast_to(weights, vals.shape)
        S, lo, hi, se, n_eff, n_raw = _predict(
            vals[ok], w[ok], row["statistic"], row["category"], conf
        )
        u_d, how = _u_d(row)
        notes = [how]
        un = float(np.hypot(u_num.get(q, 0.0), se if np.isfinite(se) else 0.0))
        ui = float(u_input.get(q, 0.0))
        if q not in u_input:
            notes.append("u_input not supplied (taken as 0)")
        ce = comparison_error(S, row["value"], u_num=un, u_input=ui, u_D=u_d, k=k)
        E = float(ce.E)
        if n_raw == 0:
            verdict = "no prediction"
            notes.append("no valid virtual patient in this stratum")
        else:
            verdict = "consistent" if bool(ce.consistent) else "inconsistent"
        am = np.nan
        if row["statistic"] == "mean" and np.isfinite(row["sd"]) and n_raw > 0:
            am = area_metric(vals[ok], stats.norm(row["value"], row["sd"]), pred_weights=w[ok])
        obs_lo, obs_hi = row["ci_low"], row["ci_high"]
        if not (np.isfinite(obs_lo) and np.isfinite(obs_hi)) and u_d > 0:
            obs_lo, obs_hi = row["value"] - 1.959964 * u_d, row["value"] + 1.959964 * u_d
        rows.append(
            {
                "id": row["id"],
                "quantity": q,
                "statistic": row["statistic"],
                "arm": arm,
                "size_mm": row["size_mm"],
                "timepoint": row["timepoint"],
                "unit": row["unit"],
                "observed": row["value"],
                "observed_low": obs_lo,
                "observed_high": obs_hi,
                "predicted": S,
                "predicted_low": lo,
                "predicted_high": hi,
                "n_virtual": n_raw,
                "n_effective": n_eff,
                "E": E,
                "rel_error_pct": 100.0 * E / row["value"] if row["value"] != 0 else np.nan,
                "u_num": un,
                "u_input": ui,
                "u_D": u_d,
                "u_val": float(ce.u_val),
                "k": k,
                "verdict": verdict,
                "area_metric": am,
                "population": row["population"],
                "citation": row["citation"],
                "note": "; ".join(notes),
            }
        )
    return pd.DataFrame(rows)


def validation_summary(
    table: pd.DataFrame, quantities_of_interest: list[str] | None = None
) -> dict[str, float]:
    """Scalar evidence from a :func:`validate` table, for a credibility plan.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`validate`.
    quantities_of_interest : list of str, optional
        Outcome variables the decision rests on; enables ``qoi_coverage``.

    Returns
    -------
    dict
        ``n_comparators``; ``fraction_consistent`` (among rows with a prediction);
        ``max_abs_rel_error_pct``, ``median_abs_rel_error_pct``; ``fraction_with_u_D`` (rows
        whose comparator reports an uncertainty); ``max_area_metric`` (NaN if none);
        ``n_strata`` (distinct arm x valve-size combinations compared, a row without size
        counting as its arm's "all sizes" stratum); ``qoi_coverage`` (share of the quantities
        of interest with at least one predicted comparator; NaN if none given).
    """
    has_pred = table["verdict"] != "no prediction"
    rel = table.loc[has_pred, "rel_error_pct"].abs()
    am = table["area_metric"].dropna()
    strata = set(zip(table["arm"], table["size_mm"].fillna(-1.0), strict=True))
    coverage = np.nan
    if quantities_of_interest:
        covered = set(table.loc[has_pred, "quantity"])
        coverage = float(np.mean([q in covered for q in quantities_of_interest]))
    return {
        "n_comparators": int(len(table)),
        "fraction_consistent": float((table.loc[has_pred, "verdict"] == "consistent").mean())
        if has_pred.any()
        else np.nan,
        "max_abs_rel_error_pct": float(rel.max()) if len(rel) else np.nan,
        "median_abs_rel_error_pct": float(rel.median()) if len(rel) else np.nan,
        "fraction_with_u_D": float((table["u_D"] > 0).mean()) if len(table) else np.nan,
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
