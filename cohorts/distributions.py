"""Marginal distributions of a population spec, parameterised as published numbers are.

Every marginal maps standard-normal scores ``z`` (the Gaussian-copula scale) to values through
its quantile function, ``x = F^{-1}(Phi(z))``, evaluated in the tail where it is accurate
(upper tail through the survival function). Parameters are in the variable's units.

==============  ============================================  ==================================
``type``        parameters                                    meaning
==============  ============================================  ==================================
normal          mean, sd                                      N(mean, sd^2)
truncnorm       mean, sd, lower, upper                        N(mean, sd^2) restricted to bounds
lognormal       mean, sd                                      log-normal with this mean and SD
gamma           mean, sd                                      shape (mean/sd)^2, scale sd^2/mean
beta            mean, sd, lower=0, upper=1                    beta on [lower, upper]
uniform         lower, upper                                  U(lower, upper)
categorical     categories, probabilities                     integer codes 0 … k-1
empirical       probabilities, values                         piecewise-linear quantile function
==============  ============================================  ==================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import special, stats

from .errors import CohortError

__all__ = ["DISTRIBUTION_TYPES", "Marginal", "MarginalError", "make_marginal"]

DISTRIBUTION_TYPES = (
    "normal",
    "truncnorm",
    "lognormal",
    "gamma",
    "beta",
    "uniform",
    "categorical",
    "empirical",
)


class MarginalError(CohortError):
    """Inconsistent distribution parameters; ``key`` is the offending parameter."""

    def __init__(self, message: str, key: str):
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class Marginal:
    """One marginal distribution.

    Attributes
    ----------
    type : str
        One of :data:`DISTRIBUTION_TYPES`.
    params : dict
        Parameters as written in the spec (variable units).
    frozen : scipy.stats frozen distribution or None
        For continuous types, the equivalent scipy distribution (moments, quantiles, pdf).
    """

    type: str
    params: dict[str, Any]
    frozen: Any = field(default=None, compare=False, repr=False)

    @property
    def is_categorical(self) -> bool:
        return self.type == "categorical"

    @property
    def categories(self) -> list[str]:
        return list(self.params["categories"]) if self.is_categorical else []

    def from_normal(self, z: np.ndarray) -> np.ndarray:
        """Values with normal scores ``z`` (``x = F^{-1}(Phi(z))``)."""
        p = self.params
        if self.type == "normal":
            return p["mean"] + p["sd"] * z
        if self.type == "lognormal":
            mu, sigma = _lognormal_params(p["mean"], p["sd"])
            return np.exp(mu + sigma * z)
        if self.type == "categorical":
            cum = np.cumsum(p["probabilities"])[:-1]
            return np.searchsorted(cum, special.ndtr(z), side="right").astype(np.int8)
        if self.type == "empirical":
            return np.interp(special.ndtr(z), p["probabilities"], p["values"])
        if self.type == "uniform":
            return p["lower"] + (p["upper"] - p["lower"]) * special.ndtr(z)
        # Remaining continuous types: quantile function in the lower tail, inverse survival
        # function in the upper tail, so that |z| up to ~8 keeps full precision.
        lower = z <= 0
        out = np.empty_like(z, dtype=np.float64)
        out[lower] = self.frozen.ppf(special.ndtr(z[lower]))
        out[~lower] = self.frozen.isf(special.ndtr(-z[~lower]))
        return out

    def mean(self) -> float:
        if self.is_categorical:
            raise TypeError("a categorical has no mean")
        if self.type == "empirical":
            return float(np.trapezoid(self.params["values"], self.params["probabilities"]))
        return float(self.frozen.mean())

    def sd(self) -> float:
        if self.is_categorical:
            raise TypeError("a categorical has no SD")
        if self.type == "empirical":
            probs = np.asarray(self.params["probabilities"], dtype=float)
            vals = np.asarray(self.params["values"], dtype=float)
            # Piecewise-linear quantile function: exact second moment per segment.
            a, b, dp = vals[:-1], vals[1:], np.diff(probs)
            second = float(np.sum(dp * (a * a + a * b + b * b) / 3.0))
            return float(np.sqrt(max(second - self.mean() ** 2, 0.0)))
        return float(self.frozen.std())

    def quantile(self, q: np.ndarray | float) -> np.ndarray:
        if self.type == "empirical":
            return np.interp(q, self.params["probabilities"], self.params["values"])
        return self.frozen.ppf(q)

    def pdf(self, x: np.ndarray) -> np.ndarray:
        if self.type == "empirical":
            probs = np.asarray(self.params["probabilities"], dtype=float)
            vals = np.asarray(self.params["values"], dtype=float)
            dens = np.diff(probs) / np.maximum(np.diff(vals), 1e-300)
            idx = np.clip(np.searchsorted(vals, x, side="right") - 1, 0, len(dens) - 1)
            inside = (x >= vals[0]) & (x <= vals[-1])
            return np.where(inside, dens[idx], 0.0)
        return self.frozen.pdf(x)


def _lognormal_params(mean: float, sd: float) -> tuple[float, float]:
    sigma2 = np.log1p((sd / mean) ** 2)
    return float(np.log(mean) - sigma2 / 2.0), float(np.sqrt(sigma2))


def make_marginal(params: dict[str, Any]) -> Marginal:
    """Build a :class:`Marginal` from a spec mapping, checking the parameters.

    Parameters
    ----------
    params : dict
        ``{"type": ..., <parameters>}`` as in the table of the module docstring.

    Returns
    -------
    Marginal

    Raises
    ------
    MarginalError
        Parameters that are individually valid but jointly impossible; ``key`` names the
        parameter (e.g. ``"probabilities"``, ``"sd"``, ``"upper"``).
    """
    p = {k: v for k, v in params.items() if k not in ("type", "source", "units")}
    kind = params["type"]
    if "sd" in p and not p["sd"] > 0:
        raise MarginalError(f"sd must be > 0, got {p['sd']}", "sd")
    if kind == "normal":
        return Marginal(kind, p, stats.norm(p["mean"], p["sd"]))
    if kind == "truncnorm":
        if not p["lower"] < p["upper"]:
            raise MarginalError(f"upper ({p['upper']}) must exceed lower ({p['lower']})", "upper")
        a = (p["lower"] - p["mean"]) / p["sd"]
        b = (p["upper"] - p["mean"]) / p["sd"]
        return Marginal(kind, p, stats.truncnorm(a, b, loc=p["mean"], scale=p["sd"]))
    if kind == "lognormal":
        if not p["mean"] > 0:
            raise MarginalError(f"lognormal mean must be > 0, got {p['mean']}", "mean")
        mu, sigma = _lognormal_params(p["mean"], p["sd"])
        return Marginal(kind, p, stats.lognorm(s=sigma, scale=np.exp(mu)))
    if kind == "gamma":
        if not p["mean"] > 0:
            raise MarginalError(f"gamma mean must be > 0, got {p['mean']}", "mean")
        shape = (p["mean"] / p["sd"]) ** 2
        return Marginal(kind, p, stats.gamma(shape, scale=p["sd"] ** 2 / p["mean"]))
    if kind == "beta":
        lower = p.setdefault("lower", 0.0)
        upper = p.setdefault("upper", 1.0)
        if not lower < upper:
            raise MarginalError(f"upper ({upper}) must exceed lower ({lower})", "upper")
        width = upper - lower
        m = (p["mean"] - lower) / width
        v = (p["sd"] / width) ** 2
        if not 0 < m < 1:
            raise MarginalError(
                f"beta mean {p['mean']} must lie strictly inside ({lower}, {upper})", "mean"
            )
        if not v < m * (1 - m):
            raise MarginalError(
                f"beta sd {p['sd']} too large for mean {p['mean']} on [{lower}, {upper}]; "
                f"allowed: sd < {width * np.sqrt(m * (1 - m)):.6g}",
                "sd",
            )
        nu = m * (1 - m) / v - 1
        return Marginal(kind, p, stats.beta(m * nu, (1 - m) * nu, loc=lower, scale=width))
    if kind == "uniform":
        if not p["lower"] < p["upper"]:
            raise MarginalError(f"upper ({p['upper']}) must exceed lower ({p['lower']})", "upper")
        return Marginal(kind, p, stats.uniform(p["lower"], p["upper"] - p["lower"]))
    if kind == "categorical":
        probs = np.asarray(p["probabilities"], dtype=float)
        cats = list(p["categories"])
        if len(probs) != len(cats):
            raise MarginalError(
                f"{len(cats)} categories but {len(probs)} probabilities", "probabilities"
            )
        if len(set(cats)) != len(cats):
            raise MarginalError(f"categories must be unique, got {cats}", "categories")
        if np.any(probs < 0) or abs(probs.sum() - 1.0) > 1e-6:
            raise MarginalError(
                f"probabilities {probs.tolist()} sum to {probs.sum():.6g}; allowed: "
                "non-negative numbers summing to 1 (tolerance 1e-6)",
                "probabilities",
            )
        p["probabilities"] = (probs / probs.sum()).tolist()
        return Marginal(kind, p)
    if kind == "empirical":
        probs = np.asarray(p["probabilities"], dtype=float)
        vals = np.asarray(p["values"], dtype=float)
        if len(probs) != len(vals) or len(probs) < 2:
            raise MarginalError(
                "probabilities and values must have the same length (>= 2)", "values"
            )
        if probs[0] != 0.0 or probs[-1] != 1.0 or np.any(np.diff(probs) <= 0):
            raise MarginalError(
                f"probabilities must increase strictly from 0 to 1, got {probs.tolist()}",
                "probabilities",
            )
        if np.any(np.diff(vals) < 0):
            raise MarginalError(f"values must be non-decreasing, got {vals.tolist()}", "values")
        return Marginal(kind, p)
    raise MarginalError(f"unknown type {kind!r}; allowed: {list(DISTRIBUTION_TYPES)}", "type")
