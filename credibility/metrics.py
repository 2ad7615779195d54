"""Validation metrics: ASME V&V 20 comparison error and the area metric.

The two numbers by which a prediction is compared with what was observed: the comparison error
``E = S - D`` with its validation uncertainty (for a statistic and its published value), and
the area between the predicted and observed distributions (for a spread). Both are plain
functions of numbers and samples; :func:`credibility.validation.validate` applies them to a
virtual trial and its comparators.

References
----------
ASME V&V 20-2009 (R2021). Standard for verification and validation in computational fluid
    dynamics and heat transfer. New York: ASME.
Ferson, S., Oberkampf, W. L., Ginzburg, L. (2008). Model validation and predictive capability
    for the thermal challenge problem. Comput. Methods Appl. Mech. Eng. 197:2408-2430.
    doi:10.1016/j.cma.2007.07.030
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from .errors import ValidationError

__all__ = ["ComparisonError", "area_metric", "comparison_error"]


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
