"""Energy distance between two multivariate samples, and its permutation test.

The energy distance of distributions ``F`` and ``G`` of ``X`` and ``Y`` in R^d is

    E(F, G) = 2 E|X - Y| - E|X - X'| - E|Y - Y'|

(Euclidean norms; ``X'`` an independent copy of ``X``); it is non-negative and zero only when
``F = G`` (Szekely & Rizzo 2004, 2013). For weighted samples the expectations are weighted
sums over pairs (V-statistics, pairs of a point with itself included), so in one dimension
``energy_distance(x, y, a, b) = scipy.stats.energy_distance(x, y, a, b) ** 2`` (scipy
returns the square root). The two-sample test permutes the pooled points' group labels
(``permutations`` times) and compares ``T = m n / (m + n) E`` with its permutation
distribution (Szekely & Rizzo 2004).

References
----------
Szekely GJ, Rizzo ML. Testing for equal distributions in high dimension. InterStat 2004;5.
Szekely GJ, Rizzo ML. Energy statistics: a class of statistics based on distances. J Stat
Plan Inference 2013;143:1249-1272. doi:10.1016/j.jspi.2013.03.018
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist

__all__ = ["energy_distance", "energy_test"]

_BLOCK = 2048  # rows per block of pairwise distances


def _mean_distance(x: np.ndarray, y: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """``sum_ij a_i b_j |x_i - y_j|`` in blocks of rows (memory: one block of distances)."""
    total = 0.0
    for start in range(0, x.shape[0], _BLOCK):
        block = cdist(x[start : start + _BLOCK], y)
        total += float(a[start : start + _BLOCK] @ block @ b)
    return total


def _as_2d(v) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    return v[:, None] if v.ndim == 1 else v


def _normalised(w, n: int) -> np.ndarray:
    w = np.ones(n) if w is None else np.asarray(w, dtype=float)
    return w / w.sum()


def energy_distance(x, y, x_weights=None, y_weights=None) -> float:
    """Energy distance ``2 E|X-Y| - E|X-X'| - E|Y-Y'|`` of two (weighted) samples.

    Parameters
    ----------
    x : array_like, shape (m,) or (m, d)
    y : array_like, shape (n,) or (n, d)
    x_weights, y_weights : array_like, optional
        Non-negative weights (default equal).

    Returns
    -------
    float
        The squared energy distance (in the units of the variables); 0 for identical samples.

    Examples
    --------
    >>> energy_distance([0.0], [3.0])
    6.0
    """
    x, y = _as_2d(x), _as_2d(y)
    a, b = _normalised(x_weights, x.shape[0]), _normalised(y_weights, y.shape[0])
    cross = _mean_distance(x, y, a, b)
    return max(2.0 * cross - _mean_distance(x, x, a, a) - _mean_distance(y, y, b, b), 0.0)


def energy_test(x, y, *, permutations: int = 199, seed: int = 0) -> dict[str, float]:
    """Permutation test of equal distributions of two unweighted samples.

    Parameters
    ----------
    x : array_like, shape (m, d)
    y : array_like, shape (n, d)
    permutations : int
        Random relabellings of the pooled sample.
    seed : int
        Seed of the permutations.

    Returns
    -------
    dict
        ``energy_distance`` (E of the two samples), ``statistic`` (``m n / (m + n) E``) and
        ``p_value`` (``(1 + #{T_perm >= T}) / (1 + permutations)``).
    """
    x, y = _as_2d(x), _as_2d(y)
    m, n = x.shape[0], y.shape[0]
    pooled = np.vstack([x, y])
    dist = cdist(pooled, pooled)
    rng = np.random.default_rng(seed)
    labels = np.zeros((m + n, permutations + 1))
    labels[:m, 0] = 1.0
    for k in range(1, permutations + 1):
        labels[rng.permutation(m + n)[:m], k] = 1.0
    d_labels = dist @ labels
    s_aa = np.einsum("ik,ik->k", labels, d_labels)
    s_ab = np.einsum("ik,ik->k", 1.0 - labels, d_labels)
    s_bb = dist.sum() - 2.0 * s_ab - s_aa
    e = 2.0 * s_ab / (m * n) - s_aa / m**2 - s_bb / n**2
    t = m * n / (m + n) * e
    return {
        "energy_distance": float(e[0]),
        "statistic": float(t[0]),
        "p_value": float((1 + np.count_nonzero(t[1:] >= t[0])) / (1 + permutations)),
    }
