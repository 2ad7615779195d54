"""Anytime-valid confidence sequences for a paired between-arm difference, and trial sizing.

A virtual trial sized by "stop when the 95 % CI is narrow enough" looks at its interval after
every wave of patients. A fixed-n confidence interval checked at every look loses its
coverage (the chance that *some* look excludes the truth grows with the number of looks). A
*confidence sequence* (CS) ``(C_t)`` holds the truth at every ``t`` at once with probability
``1 - alpha``, so the trial may stop at any look, chosen by the data, and still report a
valid interval.

Two sequences, both for the mean of paired differences ``D_i = Y_i(b) - Y_i(a)`` of the
patients in cohort order:

* :func:`asymptotic_cs` — for a continuous endpoint: the Gaussian-mixture asymptotic CS of
  Waudby-Smith, Arbour, Sinha, Kennedy & Ramdas, "Time-uniform central limit theory and
  asymptotic confidence sequences", Ann. Statist. 52(6), 2024 (Robbins' normal mixture with
  the running sample variance), ``rho`` tuned to be tightest at ``t_opt``.
* :func:`bernstein_cs` — for a bounded endpoint (a threshold or category indicator, so
  ``D`` is in ``{-1, 0, 1}``): the predictable plug-in empirical-Bernstein CS of
  Waudby-Smith & Ramdas, "Estimating means of bounded random variables by betting",
  J. R. Stat. Soc. B 86(1), 2024, Theorem 2 (valid for every ``t``, not only asymptotically;
  Howard, Ramdas, McAuliffe & Sekhon, Ann. Statist. 49(2), 2021, give the underlying
  time-uniform boundaries).

Both are intersected over time (the running intersection of a CS is again a CS).
:func:`naive_ci` is the fixed-n interval, for the coverage comparison only. Every function
takes the whole sequence and returns the interval at every ``t`` (cumulative sums: O(n)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = [
    "Sequence",
    "asymptotic_cs",
    "bernstein_cs",
    "confidence_sequence",
    "fixed_n",
    "naive_ci",
    "variance_reduction",
]


@dataclass(frozen=True)
class Sequence:
    """A confidence sequence: the estimate and interval after each of ``t = 1..n`` patients.

    Attributes
    ----------
    estimate, low, high : numpy.ndarray
        Running mean of the differences and the interval at every ``t`` (``nan``/``inf`` where
        it is not defined yet).
    method : str
        Name and source of the sequence.
    """

    estimate: np.ndarray
    low: np.ndarray
    high: np.ndarray
    method: str

    @property
    def half_width(self) -> np.ndarray:
        return (self.high - self.low) / 2.0


def _running_mean_var(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = np.arange(1, x.size + 1, dtype=float)
    mean = np.cumsum(x) / t
    # running variance by cumulative sums of the centred data (shifted for accuracy)
    shift = x[0] if x.size else 0.0
    s1 = np.cumsum(x - shift)
    s2 = np.cumsum((x - shift) ** 2)
    var = np.maximum(s2 / t - (s1 / t) ** 2, 0.0)
    return t, mean, var


def _intersect(low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    low = np.fmax.accumulate(np.where(np.isnan(low), -np.inf, low))
    high = np.fmin.accumulate(np.where(np.isnan(high), np.inf, high))
    return low, high


def asymptotic_cs(x, alpha: float = 0.05, t_opt: float | None = None, start: int = 2) -> Sequence:
    """Two-sided asymptotic CS for the mean of i.i.d. ``x`` (Waudby-Smith et al. 2024).

    ``mean_t +- sd_t sqrt(2 (t rho^2 + 1) / (t^2 rho^2) log(sqrt(t rho^2 + 1) / alpha))`` with
    ``rho^2 = (-2 log alpha + log(-2 log alpha + 1)) / t_opt``; ``t_opt`` defaults to the
    sequence length (the interval is tightest there). Undefined (infinite) before ``start``
    (at least 2): the guarantee is asymptotic, and the running variance of a few patients
    can be far too small, so the sequence starts at a burn-in (the trial's first look).
    """
    x = np.asarray(x, dtype=float)
    t, mean, var = _running_mean_var(x)
    t_opt = float(t_opt or max(x.size, 2))
    la = -2.0 * math.log(alpha)
    rho2 = (la + math.log(la + 1.0)) / t_opt
    half = np.sqrt(
        var * 2.0 * (t * rho2 + 1.0) / (t**2 * rho2) * np.log(np.sqrt(t * rho2 + 1.0) / alpha)
    )
    half[(t < max(start, 2)) | (var <= 0)] = np.inf  # no spread seen yet: no interval yet
    low, high = _intersect(mean - half, mean + half)
    return Sequence(mean, low, high, "asymptotic CS (Waudby-Smith et al., Ann. Statist. 2024)")


def bernstein_cs(x, lower: float, upper: float, alpha: float = 0.05, c: float = 0.5) -> Sequence:
    """Two-sided predictable plug-in empirical-Bernstein CS for data in ``[lower, upper]``.

    Waudby-Smith & Ramdas (2024), Theorem 2, on ``(x - lower) / (upper - lower)`` in [0, 1];
    the estimate reported is the running mean (the interval is centred on the weighted one).
    """
    x = np.asarray(x, dtype=float)
    span = float(upper - lower)
    if not span > 0 or np.any((x < lower) | (x > upper)):
        raise ValueError(f"bernstein_cs: every value must lie in [{lower}, {upper}]")
    y = (x - lower) / span
    n = y.size
    t = np.arange(1, n + 1, dtype=float)
    mu_hat = (0.5 + np.cumsum(y)) / (t + 1.0)
    # predictable: the mean and variance estimates before observation t
    mu_prev = np.concatenate([[0.5], mu_hat[:-1]])
    sig2 = (0.25 + np.cumsum((y - mu_hat) ** 2)) / (t + 1.0)
    sig2_prev = np.concatenate([[0.25], sig2[:-1]])
    log_term = math.log(2.0 / alpha)
    lam = np.minimum(np.sqrt(2.0 * log_term / (sig2_prev * t * np.log1p(t))), c)
    v = 4.0 * (y - mu_prev) ** 2
    psi = (-np.log1p(-lam) - lam) / 4.0
    s_lam = np.cumsum(lam)
    centre = np.cumsum(lam * y) / s_lam
    half = (log_term + np.cumsum(v * psi)) / s_lam
    low, high = _intersect(lower + span * (centre - half), lower + span * (centre + half))
    low, high = np.maximum(low, lower), np.minimum(high, upper)
    mean = lower + span * np.cumsum(y) / t
    return Sequence(mean, low, high, "empirical-Bernstein CS (Waudby-Smith & Ramdas, JRSS-B 2024)")


def naive_ci(x, alpha: float = 0.05) -> Sequence:
    """The fixed-n normal interval ``mean +- z sd / sqrt(t)`` recomputed at every ``t``.

    Valid at one pre-set ``t`` only: checked at many looks it covers less than ``1 - alpha``.
    """
    x = np.asarray(x, dtype=float)
    t, mean, var = _running_mean_var(x)
    z = stats.norm.ppf(1 - alpha / 2)
    half = z * np.sqrt(var * t / np.maximum(t - 1, 1)) / np.sqrt(t)
    half[t < 2] = np.inf
    return Sequence(mean, mean - half, mean + half, "fixed-n normal CI (not anytime-valid)")


def confidence_sequence(
    differences, kind: str, alpha: float = 0.05, t_opt: float | None = None, start: int = 2
) -> Sequence:
    """The CS of a paired difference: ``kind`` ``"mean"`` (asymptotic, from ``start``) or
    ``"proportion"`` (indicator differences in {-1, 0, 1}: empirical Bernstein on [-1, 1],
    valid from the first patient)."""
    if kind == "mean":
        return asymptotic_cs(differences, alpha, t_opt, start)
    if kind == "proportion":
        return bernstein_cs(differences, -1.0, 1.0, alpha)
    raise ValueError(f"kind is {kind!r}; allowed: 'mean', 'proportion'")


def fixed_n(sd: float, half_width: float, alpha: float = 0.05) -> int:
    """Patients a fixed-n design needs for a normal ``1 - alpha`` half-width with SD ``sd``."""
    z = stats.norm.ppf(1 - alpha / 2)
    return max(2, math.ceil((z * sd / half_width) ** 2))


def variance_reduction(b, a) -> dict[str, float]:
    """Common random numbers: the paired design against unpaired arms of the same cost.

    With ``n`` patients each receiving both arms, the mean difference has variance
    ``Var(b - a) / n``; with ``n`` other patients per arm (the same ``2 n`` simulations) it
    has ``(Var(a) + Var(b)) / n``. ``ratio`` is the second over the first: how many times as
    many patients unpaired arms need for the same precision.
    """
    b, a = np.asarray(b, dtype=float), np.asarray(a, dtype=float)
    if b.size < 2:
        return {"n": int(b.size), "ratio": math.nan}
    var_b, var_a = float(np.var(b, ddof=1)), float(np.var(a, ddof=1))
    var_d = float(np.var(b - a, ddof=1))
    return {
        "n": int(b.size),
        "var_a": var_a,
        "var_b": var_b,
        "var_paired_difference": var_d,
        "correlation": float(np.corrcoef(a, b)[0, 1]) if var_a > 0 and var_b > 0 else math.nan,
        "ratio": (var_a + var_b) / var_d if var_d > 0 else math.inf,
    }
