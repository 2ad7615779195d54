"""Shapley effects for dependent inputs (Song, Nelson & Staum 2016).

The Shapley effect of input ``i`` shares the output variance among inputs, fairly when inputs
are correlated (Owen 2014):
``Sh_i = sum_{J not containing i} |J|! (d - |J| - 1)! / d! * (c(J + {i}) - c(J))``
with the cost ``c(J) = E[Var(Y | X_{-J})]`` (Song et al. 2016, Theorem 1). Two designs:

``permutations="exact"`` (``d <= 10``)
    Costs of every subset ``J`` (``2^d - 2``): ``n`` outer draws of ``X_{-J}``, each with
    ``n_inner`` conditional draws of ``X_J | X_{-J}``; ``n n_inner (2^d - 1)`` rows.
``permutations="random"`` (any ``d``)
    Song et al.'s Algorithm 1 with ``n`` random permutations, one outer draw per prefix set
    (``N_o = 1``) and ``n_inner`` inner draws; ``n n_inner d`` rows. ``analyze`` reads the
    permutations back from which columns vary within each block.

Conditional sampling is exact for the problem's Gaussian copula: normal scores are jointly
Gaussian, so ``Z_J | Z_{-J}`` is Gaussian with the usual conditional mean and covariance, and
``X = F^-1(Phi(Z))``. ``Var(Y)`` comes from ``n n_inner`` further i.i.d. rows; ``analyze``
recovers ``n`` from the row count. Rows are grouped by outer index, so the design of ``n`` is a
prefix of the design of ``2 n`` (:func:`~credibility.sensitivity.run` re-uses them).

``Sh`` is normalised by ``Var(Y)`` (effects sum to 1); ``Sh_conf`` is the bootstrap half-width
(outer draws resampled within each subset, or permutations resampled); ``Sh_var`` is in output
units squared.

References
----------
Song, E., Nelson, B. L. & Staum, J. (2016). Shapley effects for global sensitivity analysis:
theory and computation. SIAM/ASA J. Uncertain. Quantif. 4(1), 1060-1083. doi:10.1137/15M1048070
Owen, A. B. (2014). Sobol' indices and Shapley value. SIAM/ASA J. Uncertain. Quantif. 2(1),
245-251. doi:10.1137/130936233
Iooss, B. & Prieur, C. (2019). Shapley effects for sensitivity analysis with correlated inputs:
comparisons with Sobol' indices, numerical estimation and applications. Int. J. Uncertain.
Quantif. 9(5), 493-514. doi:10.1615/Int.J.UncertaintyQuantification.2019028372
"""

from __future__ import annotations

from collections.abc import Sequence
from math import factorial
from typing import Any

import numpy as np
import xarray as xr

from credibility._problem import Problem
from credibility.sensitivity._common import (
    apply_columns,
    as_outputs,
    check_rows,
    z_value,
)

__all__ = ["analyze", "linear_gaussian_effects", "sample"]

CITATION = "Song, Nelson & Staum 2016, doi:10.1137/15M1048070; Owen 2014, doi:10.1137/130936233"
MAX_D = 10


def _subsets(d: int) -> list[int]:
    """Bit masks of the non-empty proper subsets, by size then value."""
    return sorted(range(1, 2**d - 1), key=lambda m: (m.bit_count(), m))


def _members(mask: int, d: int) -> np.ndarray:
    return np.array([i for i in range(d) if mask >> i & 1], dtype=int)


def _weights(d: int) -> np.ndarray:
    """Matrix ``W`` (d, 2^d) with ``Sh = W @ c`` for costs ``c`` indexed by bit mask."""
    W = np.zeros((d, 2**d))
    for i in range(d):
        for mask in range(2**d):
            if mask >> i & 1:
                continue
            s = mask.bit_count()
            w = factorial(s) * factorial(d - s - 1) / factorial(d)
            W[i, mask | 1 << i] += w
            W[i, mask] -= w
    return W


PERMUTATIONS = ("exact", "random")


def _check(problem: Problem, permutations: str) -> None:
    if permutations not in PERMUTATIONS:
        raise ValueError(
            f"shapley: permutations={permutations!r}; allowed: {', '.join(PERMUTATIONS)}"
        )
    if permutations == "exact" and problem.d > MAX_D:
        raise ValueError(
            f"shapley: exact-permutation Shapley effects need 2^d - 2 subsets; d = {problem.d} "
            f"exceeds the supported {MAX_D}; use permutations='random'"
        )


def _conditional(
    R: np.ndarray, J: np.ndarray, e_outer: np.ndarray, e_inner: np.ndarray
) -> np.ndarray:
    """Normal scores (n, n_inner, d): ``Z_K`` from ``e_outer`` (n, |K|), ``Z_J | Z_K`` from
    ``e_inner`` (n, n_inner, |J|), both standard normal."""
    d = len(R)
    K = np.setdiff1d(np.arange(d), J)
    Z_K = e_outer @ np.linalg.cholesky(R[np.ix_(K, K)]).T
    A = np.linalg.solve(R[np.ix_(K, K)], R[np.ix_(K, J)])  # (|K|, |J|)
    cov = R[np.ix_(J, J)] - R[np.ix_(J, K)] @ A
    Z = np.empty((len(e_outer), e_inner.shape[1], d))
    Z[:, :, K] = Z_K[:, None, :]
    Z[:, :, J] = (Z_K @ A)[:, None, :] + e_inner @ np.linalg.cholesky(cov).T
    return Z


def sample(
    problem: Problem,
    n: int,
    *,
    seed: int | None,
    n_inner: int = 3,
    permutations: str = "exact",
) -> np.ndarray:
    """Design for Shapley effects.

    Parameters
    ----------
    problem : Problem
        Parameters, possibly correlated through the Gaussian copula.
    n : int
        ``"exact"``: outer draws per subset (``n n_inner (2^d - 1)`` rows).
        ``"random"``: random permutations, one outer draw per prefix set
        (``n n_inner d`` rows; Song et al. 2016, Algorithm 1 with ``N_o = 1``).
    seed : int or None
    n_inner : int
        Conditional draws per outer draw (>= 2; Song et al. recommend 3).
    permutations : {"exact", "random"}
        All subsets (``d <= 10``) or ``n`` random permutations (any ``d``).

    Returns
    -------
    ndarray, shape (n_rows, d)
        One group of rows per outer index (per permutation): ``n_inner`` i.i.d. rows (for
        ``Var(Y)``), then blocks of ``n_inner`` rows that share ``X_{-J}`` and differ in
        ``X_J``. The design of ``n`` is the first rows of the design of ``2 n``.
    """
    _check(problem, permutations)
    if n_inner < 2 or n < 2:
        raise ValueError(f"shapley: need n >= 2 and n_inner >= 2; got n={n}, n_inner={n_inner}")
    d, R = problem.d, problem.correlation
    n_groups = 2**d - 1 if permutations == "exact" else d
    # One row of standard normals per outer index, drawn row by row: the design of n is the
    # first rows of the design of 2 n, so run() can double n re-using evaluated rows.
    step = d + n_inner * d  # normals per conditional block (|K| + n_inner |J| <= step)
    width = n_inner * d + (n_groups - 1) * step + (d if permutations == "random" else 0)
    E = np.random.default_rng(seed).standard_normal((n, width))
    Z = np.empty((n, n_groups, n_inner, d))
    Z[:, 0] = E[:, : n_inner * d].reshape(n, n_inner, d) @ np.linalg.cholesky(R).T

    def block(rows: slice | int, g: int, J: np.ndarray) -> np.ndarray:
        off = n_inner * d + (g - 1) * step
        e = np.atleast_2d(E[rows])
        k, j = d - len(J), len(J)
        e_in = e[:, off + k : off + k + n_inner * j].reshape(len(e), n_inner, j)
        return _conditional(R, J, e[:, off : off + k], e_in)

    if permutations == "exact":
        for g, mask in enumerate(_subsets(d), start=1):
            Z[:, g] = block(slice(None), g, _members(mask, d))
    else:
        perms = np.argsort(E[:, -d:], axis=1)  # uniform random permutations
        for i in range(n):
            for g in range(1, d):
                Z[i, g] = block(i, g, perms[i, :g])[0]
    return problem.from_normal_scores(Z.reshape(-1, d))


def _exact_columns(
    Y: np.ndarray, d: int, n: int, n_inner: int, num_resamples: int, z: float, seed: int | None
) -> dict[str, np.ndarray]:
    """Exact-permutation estimator: costs of every subset, then ``Sh = W c``."""
    m = Y.shape[1]
    subsets = _subsets(d)
    Yr = Y.reshape(n, len(subsets) + 1, n_inner, m)
    V = Yr[:, 0].reshape(n * n_inner, m)  # i.i.d. rows for Var(Y)
    nv = len(V)
    # (n_sub, n, m): Var(Y | X_{-J}) for each outer draw
    cond = Yr[:, 1:].var(axis=2, ddof=1).transpose(1, 0, 2)
    W = _weights(d)
    masks = np.array(subsets)

    def effects(c_sub: np.ndarray, var: np.ndarray) -> np.ndarray:
        c = np.zeros((2**d, c_sub.shape[-1]))
        c[masks] = c_sub
        c[2**d - 1] = var
        return (W @ c).T  # (m, d)

    var = V.var(axis=0, ddof=1)
    sh = effects(cond.mean(axis=1), var)
    rng = np.random.default_rng(seed)
    boot = np.empty((num_resamples, m, d))
    for b in range(num_resamples):
        idx = rng.integers(0, n, (len(subsets), n))
        c_b = np.take_along_axis(cond, idx[:, :, None], axis=1).mean(axis=1)
        var_b = V[rng.integers(0, nv, nv)].var(axis=0, ddof=1)
        boot[b] = effects(c_b, var_b) / var_b[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "Sh": sh / var[:, None],
            "Sh_conf": z * boot.std(axis=0, ddof=1),
            "Sh_var": sh,
            "variance": var,
        }


def _random_columns(
    X: np.ndarray,
    Y: np.ndarray,
    d: int,
    n: int,
    n_inner: int,
    num_resamples: int,
    z: float,
    seed: int | None,
) -> dict[str, np.ndarray]:
    """Song et al. (2016) Algorithm 1 with random permutations recovered from the design."""
    m = Y.shape[1]
    blocks = X.reshape(n, d, n_inner, d)[:, 1:]
    Yr = Y.reshape(n, d, n_inner, m)
    V = Yr[:, 0].reshape(n * n_inner, m)  # i.i.d. rows for Var(Y)
    nv = len(V)
    varies = np.ptp(blocks, axis=2) > 0  # (n, d-1, d): the set J of each prefix
    added = varies.copy()
    added[:, 1:] &= ~varies[:, :-1]
    if not (np.all(added.sum(axis=2) == 1) and np.all(varies.sum(axis=2) == np.arange(1, d))):
        raise ValueError(
            "shapley: X is not a design of sample(..., permutations='random') with this n_inner"
        )
    perm = np.empty((n, d), dtype=int)
    perm[:, : d - 1] = np.argmax(added, axis=2)
    perm[:, d - 1] = np.argmin(varies[:, -1], axis=1)
    cond = Yr[:, 1:].var(axis=2, ddof=1)  # (n, d-1, m)
    delta = np.diff(cond, axis=1, prepend=0.0)  # contributions of steps 1 … d-1
    contrib = np.zeros((n, d, m))
    rows = np.arange(n)[:, None]
    contrib[rows, perm[:, : d - 1]] = delta
    last = np.zeros((n, d))
    last[np.arange(n), perm[:, d - 1]] = 1.0
    minus_last = contrib.copy()
    minus_last[np.arange(n), perm[:, d - 1]] -= cond[:, -1]

    def effects(idx: np.ndarray, var: np.ndarray) -> np.ndarray:
        return (minus_last[idx].mean(axis=0) + last[idx].mean(axis=0)[:, None] * var).T

    var = V.var(axis=0, ddof=1)
    sh = effects(np.arange(n), var)  # (m, d)
    rng = np.random.default_rng(seed)
    boot = np.empty((num_resamples, m, d))
    for b in range(num_resamples):
        var_b = V[rng.integers(0, nv, nv)].var(axis=0, ddof=1)
        boot[b] = effects(rng.integers(0, n, n), var_b) / var_b[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "Sh": sh / var[:, None],
            "Sh_conf": z * boot.std(axis=0, ddof=1),
            "Sh_var": sh,
            "variance": var,
        }


def analyze(
    problem: Problem,
    X: np.ndarray,
    Y: Any,
    *,
    seed: int | None,
    n_inner: int = 3,
    permutations: str = "exact",
    num_resamples: int = 200,
    conf_level: float = 0.95,
    dims: Sequence[str] | None = None,
) -> xr.Dataset:
    """Shapley effects from the design of :func:`sample`.

    Parameters
    ----------
    problem : Problem
    X : ndarray
        The design of :func:`sample` (with the same ``n_inner`` and ``permutations``; random
        permutations are read back from which columns vary within each block).
    Y, seed, num_resamples, conf_level, dims
        As :func:`credibility.sensitivity.sobol.analyze`.

    Returns
    -------
    xarray.Dataset
        ``Sh``, ``Sh_conf`` (fractions of variance), ``Sh_var`` (output units squared) dims
        ``(output, parameter, *extra)``; ``variance`` dims ``(output, *extra)``.
    """
    _check(problem, permutations)
    X = check_rows(X, problem.d, "shapley")
    d = problem.d
    per = n_inner * (2**d - 1 if permutations == "exact" else d)
    if len(X) % per:
        raise ValueError(
            f"shapley: {len(X)} rows is not a multiple of {per} "
            f"(n_inner = {n_inner}, permutations = {permutations!r}, d = {d})"
        )
    n = len(X) // per
    outputs = as_outputs(Y, len(X), dims)
    z = z_value(conf_level)

    def columns(Y2: np.ndarray) -> dict[str, np.ndarray]:
        if permutations == "exact":
            return _exact_columns(Y2, d, n, n_inner, num_resamples, z, seed)
        return _random_columns(X, Y2, d, n, n_inner, num_resamples, z, seed)

    var_dims = {"Sh": ("parameter",), "Sh_conf": ("parameter",), "Sh_var": ("parameter",)}
    var_dims |= {"variance": ()}
    ds = apply_columns(
        outputs, columns, var_dims, {"parameter": list(problem.names)}, vectorised=True
    )
    ds["Sh"].attrs = {"long_name": "Shapley effect (fraction of output variance)", "units": "1"}
    ds["Sh_conf"].attrs = {"long_name": "Shapley effect (half-width of CI)", "units": "1"}
    ds["Sh_var"].attrs = {"long_name": "Shapley effect", "units": "output units squared"}
    ds["variance"].attrs = {"long_name": "output variance", "units": "output units squared"}
    ds.attrs = {
        "method": "shapley",
        "citation": CITATION,
        "permutations": permutations,
        "n": n,
        "n_inner": n_inner,
        "n_evaluations": len(X),
        "conf_level": conf_level,
        "num_resamples": num_resamples,
        "seed": -1 if seed is None else int(seed),
        **problem.describe(),
    }
    return ds


def linear_gaussian_effects(coef: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Exact Shapley effects (fractions of variance) of ``Y = coef . X``, ``X ~ N(mu, cov)``.

    For Gaussian inputs ``Var(Y | X_{-J}) = b_J^T (S_JJ - S_J,-J S_-J,-J^-1 S_-J,J) b_J`` is a
    constant, so ``c(J)`` is exact and the Shapley formula gives the effects (Owen & Prieur
    2017, doi:10.1137/16M1097717). Used as the reference in tests.
    """
    b = np.asarray(coef, dtype=float)
    S = np.asarray(cov, dtype=float)
    d = len(b)
    c = np.zeros(2**d)
    for mask in range(1, 2**d):
        J = _members(mask, d)
        K = np.setdiff1d(np.arange(d), J)
        S_cond = S[np.ix_(J, J)]
        if len(K):
            S_cond = S_cond - S[np.ix_(J, K)] @ np.linalg.solve(S[np.ix_(K, K)], S[np.ix_(K, J)])
        c[mask] = b[J] @ S_cond @ b[J]
    return _weights(d) @ c / c[-1]
