"""Weighted statistics of a cohort (sampling and matching weights), one helper per job.

Weights are self-normalised: only their ratios matter. The effective sample size is Kish's
``(sum w)^2 / sum w^2``. ``credibility.statistics.kish_n`` is the same formula for the
credibility package, which ``cohorts`` may not import (packages import one way).

References
----------
Kish L. Survey Sampling. Wiley, 1965 (effective sample size).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = [
    "cohort_weights",
    "kish_n",
    "weighted_corr",
    "weighted_mean",
    "weighted_quantile",
    "weighted_sd",
]


def cohort_weights(ds: xr.Dataset) -> np.ndarray:
    """The cohort's ``sampling_weight`` as float64 (ones if it has none)."""
    if "sampling_weight" in ds:
        return np.asarray(ds["sampling_weight"].values, dtype=float)
    return np.ones(ds.sizes["patient"])


def kish_n(w: np.ndarray) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2`` (0 for no weights).

    Examples
    --------
    >>> kish_n(np.array([3.0, 1.0]))
    1.6
    """
    w = np.asarray(w, dtype=float)
    return float(np.sum(w) ** 2 / np.sum(w * w)) if len(w) and np.any(w) else 0.0


def weighted_mean(x: np.ndarray, w: np.ndarray) -> float:
    """``sum(w x) / sum(w)``."""
    return float(np.sum(w * x) / np.sum(w))


def weighted_sd(x: np.ndarray, w: np.ndarray) -> float:
    """Weighted SD with the ``n_eff / (n_eff - 1)`` correction (the sample SD for equal
    weights)."""
    m = weighted_mean(x, w)
    n_eff = kish_n(w)
    var = np.sum(w * (x - m) ** 2) / np.sum(w)
    return float(np.sqrt(var * n_eff / max(n_eff - 1.0, 1.0)))


def weighted_quantile(x: np.ndarray, w: np.ndarray, q):
    """Quantiles of the weighted sample: linear interpolation of the values at the
    mid-points of their cumulative weights (Hazen's plotting positions for equal weights)."""
    order = np.argsort(x, kind="stable")
    xs, ws = x[order], w[order]
    cw = (np.cumsum(ws) - 0.5 * ws) / np.sum(ws)
    return np.interp(q, cw, xs)


def _weighted_ranks(x, w):
    order = np.argsort(x, kind="stable")
    cw = np.cumsum(w[order]) - 0.5 * w[order]
    ranks = np.empty_like(cw)
    ranks[order] = cw / np.sum(w)
    return ranks


def weighted_corr(x: np.ndarray, y: np.ndarray, w: np.ndarray, kind: str = "pearson") -> float:
    """Weighted Pearson correlation, or Spearman's (Pearson of the weighted mid-ranks).

    Parameters
    ----------
    x, y, w : ndarray
    kind : {"pearson", "spearman"}
    """
    if kind == "spearman":
        x, y = _weighted_ranks(x, w), _weighted_ranks(y, w)
    mx, my = weighted_mean(x, w), weighted_mean(y, w)
    cov = np.sum(w * (x - mx) * (y - my))
    return float(cov / np.sqrt(np.sum(w * (x - mx) ** 2) * np.sum(w * (y - my) ** 2)))
