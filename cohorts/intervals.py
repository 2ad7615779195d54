"""Sampling intervals of published summary statistics ("Table 1" figures).

A published figure is an estimate from ``n`` patients; its sampling interval is the range
of values a study of that size could have reported from the same population, at confidence
level ``conf`` (95 % by default, ``z = Phi^-1(1 - alpha/2) = 1.96``). A matched cohort
*passes* a target when its (weighted) value lies inside the target's interval.

==================  ==========================================================================
statistic           interval
==================  ==========================================================================
mean                ``mean +/- z sd / sqrt(n)`` (normal approximation of the sampling
                    distribution of a mean; e.g. Altman et al. 2000, ch. 4)
sd                  ``[sd sqrt((n-1)/chi2_{1-alpha/2,n-1}), sd sqrt((n-1)/chi2_{alpha/2,n-1})]``
                    (chi-square interval of a normal SD; Casella & Berger 2002, sec. 9.2)
proportion          Wilson score interval (Wilson 1927; recommended by Brown, Cai &
                    DasGupta 2001 over the Wald interval, also for p near 0 or 1)
quantile q_p        ``p +/- z sqrt(p (1-p) / n)`` on the probability scale, the asymptotic
(q25, median, q75)  distribution of a sample quantile (variance ``p(1-p) / (n f(q_p)^2)``,
                    Cramer 1946, sec. 28.5), mapped to values through the piecewise-linear
                    quantile function of the published quartiles (extrapolated with the
                    slope of the nearer half of the IQR): the density ``f`` is estimated
                    by the quartile spacing on each side of the median
correlation         Fisher's z: ``tanh(atanh(r) +/- z sqrt(c / (n-3)))``, ``c = 1`` for
                    Pearson's r (Fisher 1921), ``c = 1.06`` for Spearman's rho (Fieller,
                    Hartley & Pearson 1957)
==================  ==========================================================================

References
----------
Altman DG, Machin D, Bryant TN, Gardner MJ. Statistics with Confidence, 2nd ed. BMJ Books,
2000.
Brown LD, Cai TT, DasGupta A. Interval estimation for a binomial proportion. Stat Sci
2001;16:101-133. doi:10.1214/ss/1009213286
Casella G, Berger RL. Statistical Inference, 2nd ed. Duxbury, 2002.
Cramer H. Mathematical Methods of Statistics. Princeton University Press, 1946.
Fieller EC, Hartley HO, Pearson ES. Tests for rank correlation coefficients. I. Biometrika
1957;44:470-481. doi:10.1093/biomet/44.3-4.470
Fisher RA. On the "probable error" of a coefficient of correlation deduced from a small
sample. Metron 1921;1:3-32.
Wilson EB. Probable inference, the law of succession, and statistical inference. J Am Stat
Assoc 1927;22:209-212. doi:10.1080/01621459.1927.10502953
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

__all__ = [
    "QUARTILES",
    "correlation_interval",
    "mean_interval",
    "proportion_interval",
    "quantile_interval",
    "sd_interval",
    "z_value",
]

#: Probability levels of the published quartiles (q1, median, q3).
QUARTILES = (0.25, 0.5, 0.75)


def z_value(conf: float) -> float:
    """Two-sided standard-normal quantile ``Phi^-1(1 - (1 - conf)/2)`` (1.96 for 0.95)."""
    return float(stats.norm.ppf(0.5 + conf / 2.0))


def mean_interval(mean: float, sd: float, n: float, conf: float = 0.95) -> tuple[float, float]:
    """``mean +/- z sd / sqrt(n)``.

    Examples
    --------
    >>> [round(v, 3) for v in mean_interval(80.0, 6.0, 100)]
    [78.824, 81.176]
    """
    half = z_value(conf) * sd / math.sqrt(n)
    return mean - half, mean + half


def sd_interval(sd: float, n: float, conf: float = 0.95) -> tuple[float, float]:
    """Chi-square interval of a standard deviation from ``n >= 2`` normal observations."""
    alpha = 1.0 - conf
    df = n - 1.0
    return (
        sd * math.sqrt(df / stats.chi2.ppf(1.0 - alpha / 2.0, df)),
        sd * math.sqrt(df / stats.chi2.ppf(alpha / 2.0, df)),
    )


def proportion_interval(p: float, n: float, conf: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``p`` observed in ``n`` patients.

    Examples
    --------
    >>> [round(v, 4) for v in proportion_interval(0.5, 100)]
    [0.4038, 0.5962]
    """
    z = z_value(conf)
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2.0 * n)) / denom
    half = z / denom * math.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def _quartile_function(quartiles: tuple[float, float, float], u: float) -> float:
    """Piecewise-linear quantile function through the quartiles, linear beyond them."""
    q1, med, q3 = quartiles
    if u < QUARTILES[0]:
        return q1 - (QUARTILES[0] - u) * (med - q1) / 0.25
    if u > QUARTILES[2]:
        return q3 + (u - QUARTILES[2]) * (q3 - med) / 0.25
    return float(np.interp(u, QUARTILES, quartiles))


def quantile_interval(
    level: float, quartiles: tuple[float, float, float], n: float, conf: float = 0.95
) -> tuple[float, float]:
    """Interval of the published quantile at ``level`` (0.25, 0.5 or 0.75).

    Parameters
    ----------
    level : float
        Probability level of the quantile.
    quartiles : (q1, median, q3)
        The published quartiles, in the variable's units.
    n : float
        Patients the quartiles were computed from.
    conf : float
        Confidence level.

    Examples
    --------
    >>> [round(v, 2) for v in quantile_interval(0.5, (70.0, 80.0, 92.0), 100)]
    [76.08, 84.7]
    """
    half = z_value(conf) * math.sqrt(level * (1.0 - level) / n)
    lo = max(level - half, 1e-9)
    hi = min(level + half, 1.0 - 1e-9)
    return _quartile_function(quartiles, lo), _quartile_function(quartiles, hi)


def correlation_interval(
    r: float, n: float, conf: float = 0.95, kind: str = "pearson"
) -> tuple[float, float]:
    """Fisher-z interval of a correlation from ``n > 3`` patients.

    Parameters
    ----------
    kind : {"pearson", "spearman"}
    """
    factor = 1.06 if kind == "spearman" else 1.0
    half = z_value(conf) * math.sqrt(factor / (n - 3.0))
    centre = math.atanh(float(np.clip(r, -0.999999, 0.999999)))
    return math.tanh(centre - half), math.tanh(centre + half)
