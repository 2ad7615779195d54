"""Compiled kernels of the delta estimator (Plischke et al. 2013, eqns 26 and 30).

The same estimator as SALib's ``calc_delta`` and ``sobol_first`` (silverman-bandwidth Gaussian
kernel densities of the output, over the whole sample and within each class of the input's
ranks, compared on a uniform grid of the output), computed without their cost: SALib
evaluates every kernel at every grid point with one ``exp`` each (``scipy.stats.gaussian_kde``);
here each data point costs two ``exp`` calls. On a uniform grid ``g_k = g_0 + k dx`` the kernel
of a point ``y`` with bandwidth ``h`` steps from one grid point to the next by a factor:

    K_{k+1} / K_k = exp(-u δ) · exp(-δ² (t + 1/2)),     δ = dx / h,

with ``u`` the standardised distance from ``y`` to its nearest grid point and ``t`` the number
of steps already taken outward. The second factor depends only on the bandwidth and is
computed once per class. Walking outward from the nearest grid point, every factor is at most
1, so the recurrence cannot overflow; it loses at most a few units in the last place per step
(the known-answer test against SALib: indices equal to 1e-12).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["delta_hats", "sobol_firsts"]

_SQRT_2PI = math.sqrt(2.0 * math.pi)


@njit(cache=True)
def _var1(y: np.ndarray) -> float:
    """Sample variance (ddof 1)."""
    mean = 0.0
    for v in y:
        mean += v
    mean /= y.size
    ss = 0.0
    for v in y:
        ss += (v - mean) * (v - mean)
    return ss / (y.size - 1)


@njit(cache=True)
def _add_kde(ys: np.ndarray, grid: np.ndarray, out: np.ndarray) -> None:
    """Add the silverman-bandwidth Gaussian kernel density of ``ys`` on ``grid`` to ``out``."""
    n = ys.size
    h = math.sqrt(_var1(ys) * (n * 0.75) ** (-0.4))
    G = grid.size
    dx = (grid[G - 1] - grid[0]) / (G - 1)
    delta = dx / h
    q = np.empty(G)
    for t in range(G):
        q[t] = math.exp(-delta * delta * (t + 0.5))
    scale = 1.0 / (n * h * _SQRT_2PI)
    for y in ys:
        c = int(round((y - grid[0]) / dx))
        c = min(max(c, 0), G - 1)
        u = (grid[c] - y) / h
        k0 = math.exp(-0.5 * u * u)
        out[c] += scale * k0
        step = math.exp(-u * delta)
        k = k0
        for t in range(G - 1 - c):
            k *= step * q[t]
            if k == 0.0:
                break
            out[c + 1 + t] += scale * k
        step = math.exp(u * delta)
        k = k0
        for t in range(c):
            k *= step * q[t]
            if k == 0.0:
                break
            out[c - 1 - t] += scale * k


@njit(cache=True)
def _class_bounds(m: np.ndarray, b: int) -> tuple[int, int]:
    """Sorted positions ``p`` of class ``b``: ``m[b] < p + 1 <= m[b + 1]`` (SALib's ranks)."""
    return int(math.floor(m[b])), int(math.floor(m[b + 1]))


@njit(cache=True)
def _delta_hat(y: np.ndarray, x: np.ndarray, grid: np.ndarray, m: np.ndarray) -> float:
    """SALib's ``calc_delta(y, grid, x, m)``: the delta estimate of one sample."""
    n = y.size
    G = grid.size
    fy = np.zeros(G)
    _add_kde(y, grid, fy)
    order = np.argsort(x, kind="mergesort")  # ordinal ranks: ties in order of appearance
    ys = y[order]
    d = 0.0
    fyc = np.empty(G)
    for b in range(m.size - 1):
        lo, hi = _class_bounds(m, b)
        nm = hi - lo
        if nm <= 0:
            continue
        yc = ys[lo:hi]
        if yc.max() - yc.min() == 0.0:
            continue
        fyc[:] = 0.0
        _add_kde(yc, grid, fyc)
        area = 0.0
        for k in range(G - 1):
            area += (
                (grid[k + 1] - grid[k]) * (abs(fy[k] - fyc[k]) + abs(fy[k + 1] - fyc[k + 1])) / 2.0
            )
        d += nm / (2.0 * n) * area
    return d


@njit(cache=True)
def delta_hats(
    y: np.ndarray, x: np.ndarray, grid: np.ndarray, m: np.ndarray, rows: np.ndarray
) -> np.ndarray:
    """The delta estimate of each resample ``y[rows[i]], x[rows[i]]``."""
    out = np.empty(rows.shape[0])
    for i in range(rows.shape[0]):
        r = rows[i]
        out[i] = _delta_hat(y[r], x[r], grid, m)
    return out


@njit(cache=True)
def _sobol_first(y: np.ndarray, x: np.ndarray, m: np.ndarray) -> float:
    """SALib's ``sobol_first(y, x, m)``: the correlation ratio over the classes of x's ranks."""
    if y.max() - y.min() == 0.0:
        return 0.0
    n = y.size
    order = np.argsort(x, kind="mergesort")
    ys = y[order]
    mean = y.mean()
    vi = 0.0
    for b in range(m.size - 1):
        lo, hi = _class_bounds(m, b)
        nm = hi - lo
        if nm <= 0:
            return np.nan  # SALib: the mean of an empty class
        vi += nm / n * (ys[lo:hi].mean() - mean) ** 2
    return vi / y.var()


@njit(cache=True)
def sobol_firsts(y: np.ndarray, x: np.ndarray, m: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The first-order index of each resample ``y[rows[i]], x[rows[i]]``."""
    out = np.empty(rows.shape[0])
    for i in range(rows.shape[0]):
        r = rows[i]
        out[i] = _sobol_first(y[r], x[r], m)
    return out
