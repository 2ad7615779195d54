"""Uncertain-parameter problems shared by :mod:`credibility.uq` and :mod:`credibility.sensitivity`.

A :class:`Problem` is built from the ``uncertainty`` block of a trial config::

    uncertainty:
      parameters:
        stiffness_scale: {dist: normal, mean: 1.0, sd: 0.05}
        diameter_mm: {dist: uniform, low: 28, high: 36, units: mm}
      correlation: {stiffness_scale: {diameter_mm: 0.3}}   # optional

Marginals (``dist`` and its keys, all in the parameter's own units):

==============  ==================================  =====================================
``dist``        keys                                chaospy distribution
==============  ==================================  =====================================
normal          mean, sd                            ``Normal(mean, sd)``
truncnormal     mean, sd, low, high                 ``TruncNormal(low, high, mean, sd)``
lognormal       mu, sigma (of the log)              ``LogNormal(mu, sigma)``
uniform         low, high                           ``Uniform(low, high)``
triangular      low, mode, high                     ``Triangle(low, mode, high)``
beta            alpha, beta, low, high              ``Beta(alpha, beta, low, high)``
gamma           shape, scale                        ``Gamma(shape, scale)``
==============  ==================================  =====================================

Optional keys of every parameter: ``units`` and ``source`` (kept as metadata).

Dependence is a Gaussian copula (the Nataf transformation; Liu & Der Kiureghian 1986,
doi:10.1016/0266-8920(86)90033-0): ``correlation`` gives pairwise correlations of the
*normal scores* ``Z_i = Phi^-1(F_i(X_i))``; unspecified pairs are 0. For normal marginals this is
the Pearson correlation of the parameters themselves. The matrix must be positive definite.

Germ space: the problem maps an independent "germ" ``xi`` (each ``xi_i`` drawn from the marginal
of parameter ``i``, independently) to the parameters, ``X = T(xi)``, through
``U = F(xi) -> Z = Phi^-1(U) -> Zc = L Z -> X = F^-1(Phi(Zc))`` with ``L`` the Cholesky factor of
the copula correlation (a Rosenblatt transformation of the Gaussian copula). ``T`` is the
identity for independent parameters, so polynomial chaos built on the germ is a PCE in the
parameters themselves; with correlation it is a PCE in the decorrelated germ.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import chaospy
import numpy as np
from scipy import special

from .errors import CredibilityError

__all__ = ["DISTRIBUTIONS", "Problem", "UncertaintySpecError", "problem_from_config"]

#: Allowed ``dist`` values and their required keys.
DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "normal": ("mean", "sd"),
    "truncnormal": ("mean", "sd", "low", "high"),
    "lognormal": ("mu", "sigma"),
    "uniform": ("low", "high"),
    "triangular": ("low", "mode", "high"),
    "beta": ("alpha", "beta", "low", "high"),
    "gamma": ("shape", "scale"),
}
_METADATA_KEYS = ("units", "source")
#: Probabilities are kept in [_EPS, 1 - _EPS] so that unbounded marginals stay finite.
_EPS = 1e-12


class UncertaintySpecError(CredibilityError):
    """An ``uncertainty`` config block is invalid; the message names file, key and allowed values."""


def _chaospy_marginal(dist: str, p: Mapping[str, float]) -> chaospy.Distribution:
    if dist == "normal":
        return chaospy.Normal(p["mean"], p["sd"])
    if dist == "truncnormal":
        return chaospy.TruncNormal(p["low"], p["high"], p["mean"], p["sd"])
    if dist == "lognormal":
        return chaospy.LogNormal(p["mu"], p["sigma"])
    if dist == "uniform":
        return chaospy.Uniform(p["low"], p["high"])
    if dist == "triangular":
        return chaospy.Triangle(p["low"], p["mode"], p["high"])
    if dist == "beta":
        return chaospy.Beta(p["alpha"], p["beta"], p["low"], p["high"])
    return chaospy.Gamma(p["shape"], p["scale"])


def _check_marginal(name: str, spec: Any, source: str) -> tuple[str, dict[str, float], dict]:
    key = f"uncertainty.parameters.{name}"
    if not isinstance(spec, Mapping):
        raise UncertaintySpecError(
            f"{source}: key '{key}' must be a mapping like "
            "{dist: normal, mean: 1.0, sd: 0.05}; got " + repr(spec)
        )
    dist = spec.get("dist")
    if dist not in DISTRIBUTIONS:
        raise UncertaintySpecError(
            f"{source}: key '{key}.dist' is {dist!r}; allowed: {', '.join(sorted(DISTRIBUTIONS))}"
        )
    required = DISTRIBUTIONS[dist]
    allowed = set(required) | {"dist", *_METADATA_KEYS}
    for k in spec:
        if k not in allowed:
            raise UncertaintySpecError(
                f"{source}: key '{key}.{k}' is not allowed for dist '{dist}'; "
                f"allowed keys: {', '.join(sorted(allowed))}"
            )
    params: dict[str, float] = {}
    for k in required:
        if k not in spec:
            raise UncertaintySpecError(
                f"{source}: key '{key}.{k}' is missing; dist '{dist}' needs {', '.join(required)}"
            )
        v = spec[k]
        if isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v):
            raise UncertaintySpecError(
                f"{source}: key '{key}.{k}' must be a finite number; got {v!r}"
            )
        params[k] = float(v)
    for k in ("sd", "sigma", "alpha", "beta", "shape", "scale"):
        if k in params and params[k] <= 0:
            raise UncertaintySpecError(f"{source}: key '{key}.{k}' must be > 0; got {params[k]}")
    if "low" in params and params["high"] <= params["low"]:
        raise UncertaintySpecError(
            f"{source}: key '{key}.high' must exceed '{key}.low'; got "
            f"low={params['low']}, high={params['high']}"
        )
    if dist == "triangular" and not params["low"] <= params["mode"] <= params["high"]:
        raise UncertaintySpecError(
            f"{source}: key '{key}.mode' must lie in [low, high]; got {params['mode']}"
        )
    meta = {k: str(spec[k]) for k in _METADATA_KEYS if k in spec}
    return dist, params, meta


@dataclass(frozen=True, eq=False)
class Problem:
    """Uncertain parameters: marginals plus an optional Gaussian-copula correlation.

    Build it with :func:`problem_from_config`. Attributes ``names``, ``dists`` (the ``dist``
    keyword of each parameter), ``params`` (its numeric keys), ``meta`` (``units``/``source``),
    ``correlation`` (``(d, d)`` normal-score correlation) and ``source`` (where it came from).
    """

    names: tuple[str, ...]
    dists: tuple[str, ...]
    params: tuple[dict[str, float], ...]
    meta: tuple[dict[str, str], ...]
    correlation: np.ndarray
    source: str = "<config>"
    _chol: np.ndarray = field(init=False, repr=False)
    _marginals: tuple[chaospy.Distribution, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_chol", np.linalg.cholesky(self.correlation))
        marginals = tuple(
            _chaospy_marginal(d, p) for d, p in zip(self.dists, self.params, strict=False)
        )
        object.__setattr__(self, "_marginals", marginals)

    # -- basic properties -------------------------------------------------------------------
    @property
    def d(self) -> int:
        """Number of parameters."""
        return len(self.names)

    @property
    def independent(self) -> bool:
        """True when the copula correlation is the identity."""
        return bool(np.array_equal(self.correlation, np.eye(self.d)))

    @property
    def marginals(self) -> tuple[chaospy.Distribution, ...]:
        """The chaospy marginal distribution of each parameter."""
        return self._marginals

    @property
    def germ(self) -> chaospy.J:
        """Independent joint chaospy distribution of the germ (product of the marginals)."""
        return chaospy.J(
            *(_chaospy_marginal(d, p) for d, p in zip(self.dists, self.params, strict=False))
        )

    def units(self, name: str) -> str:
        """Units of parameter ``name`` ("1" when not given)."""
        return self.meta[self.names.index(name)].get("units", "1")

    def require_independent(self, method: str) -> None:
        """Raise :class:`UncertaintySpecError` if the parameters are correlated."""
        if not self.independent:
            raise UncertaintySpecError(
                f"{self.source}: key 'uncertainty.correlation' is set, but method '{method}' "
                "assumes independent parameters; allowed for correlated inputs: "
                "shapley, delta, pawn (sensitivity) and mc, pce_collocation, pce_spectral (uq)"
            )

    # -- transformations --------------------------------------------------------------------
    def _cdf(self, X: np.ndarray) -> np.ndarray:
        U = np.column_stack([m.fwd(X[:, i]) for i, m in enumerate(self._marginals)])
        return np.clip(U, _EPS, 1.0 - _EPS)

    def _ppf(self, U: np.ndarray) -> np.ndarray:
        U = np.clip(U, _EPS, 1.0 - _EPS)
        return np.column_stack([m.inv(U[:, i]) for i, m in enumerate(self._marginals)])

    def from_normal_scores(self, Z: np.ndarray) -> np.ndarray:
        """Parameters from correlated normal scores ``Z`` (rows ~ N(0, correlation))."""
        return self._ppf(special.ndtr(np.asarray(Z, dtype=float)))

    def to_normal_scores(self, X: np.ndarray) -> np.ndarray:
        """Normal scores ``Phi^-1(F_i(X_i))`` of parameter rows ``X``."""
        return special.ndtri(self._cdf(np.asarray(X, dtype=float)))

    def from_germ(self, xi: np.ndarray) -> np.ndarray:
        """Map independent germ rows ``xi`` (n, d) to parameter rows ``X`` (n, d)."""
        xi = np.asarray(xi, dtype=float)
        if self.independent:
            return xi.copy()
        Z = special.ndtri(self._cdf(xi))
        return self.from_normal_scores(Z @ self._chol.T)

    def to_germ(self, X: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`from_germ`."""
        X = np.asarray(X, dtype=float)
        if self.independent:
            return X.copy()
        Zc = self.to_normal_scores(X)
        Z = np.linalg.solve(self._chol, Zc.T).T
        return self._ppf(special.ndtr(Z))

    def from_unit(self, U: np.ndarray) -> np.ndarray:
        """Map independent uniform rows ``U`` in [0, 1]^d to parameter rows."""
        return self.from_germ(self._ppf(np.asarray(U, dtype=float)))

    def to_unit(self, X: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`from_unit` (probability integral transform of the germ)."""
        return self._cdf(self.to_germ(X))

    def sample(self, n: int, *, seed: int | np.random.Generator | None) -> np.ndarray:
        """Draw ``n`` i.i.d. parameter rows (plain Monte Carlo).

        Rows are generated one after another from ``seed``, so the first ``n`` rows of a draw of
        ``2 n`` equal a draw of ``n``: sample sizes can be doubled without re-running rows.
        """
        rng = np.random.default_rng(seed)
        return self.from_normal_scores(rng.standard_normal((int(n), self.d)) @ self._chol.T)

    def to_salib(self) -> dict[str, Any]:
        """SALib problem on the unit hypercube (samples are mapped with :meth:`from_unit`)."""
        return {"num_vars": self.d, "names": list(self.names), "bounds": [[0.0, 1.0]] * self.d}

    def describe(self) -> dict[str, str]:
        """Attributes describing the problem, for ``Dataset.attrs``."""
        parts = []
        for name, dist, p in zip(self.names, self.dists, self.params, strict=False):
            parts.append(f"{name}~{dist}(" + ", ".join(f"{k}={v:g}" for k, v in p.items()) + ")")
        return {
            "problem": "; ".join(parts),
            "problem_source": self.source,
            "copula_correlation": np.array2string(self.correlation, precision=4, separator=","),
        }


def problem_from_config(block: Mapping[str, Any], *, source: str = "<config>") -> Problem:
    """Build a :class:`Problem` from an ``uncertainty`` config block.

    Parameters
    ----------
    block : mapping
        ``{"parameters": {name: {dist: ..., ...}}, "correlation": {a: {b: rho}}}``; the
        ``correlation`` key is optional. See the module docstring for distributions and keys.
    source : str
        File the block came from; used in error messages and attrs.

    Returns
    -------
    Problem

    Raises
    ------
    UncertaintySpecError
        Unknown distribution or key, missing or non-numeric value, unknown name in
        ``correlation``, correlation outside (-1, 1), conflicting duplicate pairs, or a
        correlation matrix that is not positive definite. The message names ``source``, the key
        and the allowed values.

    Examples
    --------
    >>> p = problem_from_config({"parameters": {"a": {"dist": "uniform", "low": 0, "high": 1}}})
    >>> p.names
    ('a',)
    """
    if not isinstance(block, Mapping):
        raise UncertaintySpecError(
            f"{source}: key 'uncertainty' must be a mapping with keys 'parameters' and "
            "optionally 'correlation'"
        )
    for k in block:
        if k not in ("parameters", "correlation"):
            raise UncertaintySpecError(
                f"{source}: key 'uncertainty.{k}' is not allowed; allowed: correlation, parameters"
            )
    params = block.get("parameters")
    if not isinstance(params, Mapping) or not params:
        raise UncertaintySpecError(
            f"{source}: key 'uncertainty.parameters' must be a non-empty mapping "
            "name -> {dist: ..., ...}"
        )
    names = tuple(str(n) for n in params)
    checked = [_check_marginal(n, params[n], source) for n in names]
    d = len(names)
    R = np.eye(d)
    corr = block.get("correlation") or {}
    if not isinstance(corr, Mapping):
        raise UncertaintySpecError(
            f"{source}: key 'uncertainty.correlation' must be a mapping name -> {{name: rho}}"
        )
    for a, row in corr.items():
        if a not in names:
            raise UncertaintySpecError(
                f"{source}: key 'uncertainty.correlation.{a}' names no parameter; "
                f"allowed: {', '.join(names)}"
            )
        if not isinstance(row, Mapping):
            raise UncertaintySpecError(
                f"{source}: key 'uncertainty.correlation.{a}' must be a mapping name -> rho"
            )
        for b, rho in row.items():
            key = f"uncertainty.correlation.{a}.{b}"
            if b not in names or b == a:
                raise UncertaintySpecError(
                    f"{source}: key '{key}' names no other parameter; "
                    f"allowed: {', '.join(n for n in names if n != a)}"
                )
            if isinstance(rho, bool) or not isinstance(rho, int | float) or not -1 < rho < 1:
                raise UncertaintySpecError(
                    f"{source}: key '{key}' must be a number in (-1, 1); got {rho!r}"
                )
            i, j = names.index(a), names.index(b)
            if R[i, j] != 0 and R[i, j] != rho:
                raise UncertaintySpecError(
                    f"{source}: key '{key}' = {rho} conflicts with "
                    f"'uncertainty.correlation.{b}.{a}' = {R[i, j]}"
                )
            R[i, j] = R[j, i] = float(rho)
    if np.linalg.eigvalsh(R).min() <= 1e-10:
        raise UncertaintySpecError(
            f"{source}: key 'uncertainty.correlation' gives a matrix that is not positive "
            "definite (smallest eigenvalue "
            f"{np.linalg.eigvalsh(R).min():.3g}); allowed: positive-definite correlations"
        )
    return Problem(
        names=names,
        dists=tuple(c[0] for c in checked),
        params=tuple(c[1] for c in checked),
        meta=tuple(c[2] for c in checked),
        correlation=R,
        source=source,
    )
