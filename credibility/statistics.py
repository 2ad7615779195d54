"""Weighted statistics of a virtual cohort: means, proportions, percentiles, effective n.

Virtual patients may carry sampling weights (oversampled subgroups, matched cohorts); every
estimate here is weighted, and its interval uses Kish's effective sample size
(:func:`kish_n`, the one implementation in the package).

References
----------
Kish, L. (1965). Survey Sampling. New York: Wiley.
Clopper, C. J., Pearson, E. S. (1934). Biometrika 26(4):404-413. doi:10.1093/biomet/26.4.404
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from .errors import ValidationError

__all__ = [
    "kish_n",
    "mean_ci",
    "patient_weights",
    "proportion_ci",
    "proportion_interval",
    "weighted_percentiles",
]


def kish_n(w: ArrayLike, axis: int | None = None) -> Any:
    """Kish's effective sample size ``(Σw)² / Σw²`` of weighted data (Kish 1965).

    Parameters
    ----------
    w : array_like
        Non-negative weights.
    axis : int, optional
        Axis to sum over (one effective n per row for ``axis=1``); default all weights.

    Returns
    -------
    float or ndarray
        0 where the weights sum to 0.

    Examples
    --------
    >>> kish_n([1.0, 1.0, 1.0, 1.0]), kish_n([3.0, 1.0])
    (4.0, 1.6)
    """
    w = np.asarray(w, dtype=float)
    s = w.sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        n = np.where(s > 0, s**2 / (w**2).sum(axis=axis), 0.0)
    return float(n) if n.ndim == 0 else n


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
    ValueError
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
    # weighted counts p * n_eff may exceed n_eff by round-off
    k_arr = np.where(np.abs(k_arr - n_arr) <= 1e-9 * n_arr, np.minimum(k_arr, n_arr), k_arr)
    k_arr = np.where(np.abs(k_arr) <= 1e-9 * n_arr, np.maximum(k_arr, 0.0), k_arr)
    if np.any((k_arr < 0) | (k_arr > n_arr) | ~np.isfinite(k_arr)):
        raise ValidationError(f"k must satisfy 0 <= k <= n; got k={k!r}, n={n!r}")
    alpha = 1.0 - conf
    with np.errstate(invalid="ignore", divide="ignore"):
        lower = stats.beta.ppf(alpha / 2.0, k_arr, n_arr - k_arr + 1.0)
        upper = stats.beta.ppf(1.0 - alpha / 2.0, k_arr + 1.0, n_arr - k_arr)
    lower = np.where(k_arr <= 0, 0.0, lower)
    upper = np.where(k_arr >= n_arr, 1.0, upper)
    return np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)


def mean_ci(x: np.ndarray, w: np.ndarray, mask: np.ndarray, conf: float) -> dict[str, float]:
    """Weighted mean with a Student-t interval (Kish effective n), column-wise over masks.

    ``x``, ``w`` and ``mask`` broadcast to ``(k, n)``: k strata evaluated at once.
    """
    x, w, mask = np.broadcast_arrays(np.atleast_2d(x), np.atleast_2d(w), np.atleast_2d(mask))
    ww = np.where(mask & np.isfinite(x), w, 0.0)
    xs = np.where(ww > 0, x, 0.0)
    sw = ww.sum(axis=1)
    n = (ww > 0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (ww * xs).sum(axis=1) / sw
        n_eff = kish_n(ww, axis=1)
        var = (ww * (xs - mean[:, None]) ** 2).sum(axis=1) / sw * n_eff / (n_eff - 1.0)
        se = np.sqrt(var / n_eff)
        tq = stats.t.ppf(0.5 + conf / 2.0, np.maximum(n_eff - 1.0, 1.0))
    return {
        "n": n,
        "estimate": mean,
        "ci_low": mean - tq * se,
        "ci_high": mean + tq * se,
        "sd": np.sqrt(var),
        "n_eff": n_eff,
    }


def proportion_ci(
    event: np.ndarray, w: np.ndarray, mask: np.ndarray, conf: float
) -> dict[str, Any]:
    """Weighted proportion with a Clopper–Pearson interval on Kish effective counts."""
    event, w, mask = np.broadcast_arrays(
        np.atleast_2d(event), np.atleast_2d(w), np.atleast_2d(mask)
    )
    ww = np.where(mask, w, 0.0)
    sw = ww.sum(axis=1)
    n = (ww > 0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = (ww * event).sum(axis=1) / sw
        n_eff = kish_n(ww, axis=1)
    lo = np.full(p.shape, np.nan)
    hi = np.full(p.shape, np.nan)
    good = n > 0
    if good.any():
        lo[good], hi[good] = proportion_interval(p[good] * n_eff[good], n_eff[good], conf=conf)
    return {"n": n, "estimate": p, "ci_low": lo, "ci_high": hi, "n_eff": n_eff}


def weighted_percentiles(
    x: np.ndarray, w: np.ndarray, mask: np.ndarray, probs: Sequence[float]
) -> np.ndarray:
    """Weighted quantiles (inverse of the weighted ECDF) of every row of ``x`` over ``mask``.

    The ``p`` quantile is the smallest value whose cumulative weight reaches ``p`` of the
    row's total weight (for equal weights, ``sorted(x)[ceil(p n) - 1]``). Values that are not
    finite or have a weight ``<= 0`` are left out.

    Parameters
    ----------
    x, w, mask : array_like
        Values, weights and the patients to use; broadcast to ``(rows, n)`` (1-D: one row).
    probs : sequence of float
        Probabilities in [0, 1].

    Returns
    -------
    ndarray
        ``(rows, len(probs))``; NaN for rows without valid values.

    Examples
    --------
    >>> weighted_percentiles([1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 5.0], True, [0.5])
    array([[4.]])
    """
    x, w, mask = np.broadcast_arrays(np.atleast_2d(x), np.atleast_2d(w), np.atleast_2d(mask))
    valid = mask & np.isfinite(x) & (w > 0)
    order = np.argsort(np.where(valid, x, np.inf), axis=1, kind="stable")
    xs = np.take_along_axis(np.where(valid, x, np.inf), order, axis=1)
    ws = np.take_along_axis(np.where(valid, w, 0.0), order, axis=1)
    cw = np.cumsum(ws, axis=1)
    total = cw[:, -1:]
    out = np.full((x.shape[0], len(probs)), np.nan)
    has = total[:, 0] > 0
    for j, p in enumerate(probs):
        idx = (cw < p * total).sum(axis=1)  # first index whose cumulative weight reaches p
        idx = np.minimum(idx, x.shape[1] - 1)
        out[has, j] = xs[has, idx[has]]
    return out
