"""Shapley effects for dependent inputs (Song, Nelson & Staum 2016, exact permutations).

The Shapley effect of input ``i`` shares the output variance among inputs, fairly when inputs
are correlated (Owen 2014):
``Sh_i = sum_{J not containing i} |J|! (d - |J| - 1)! / d! * (c(J + {i}) - c(J))``
with the cost ``c(J) = E[Var(Y | X_{-J})]`` (Song et al. 2016, Theorem 1). Costs are estimated
for every subset ``J`` (the exact-permutation algorithm, ``2^d - 2`` subsets; ``d <= 10``):
``n`` outer draws of ``X_{-J}``, each with ``n_inner`` conditional draws of ``X_J | X_{-J}``.
Conditional sampling is exact for the problem's Gaussian copula: normal scores are jointly
Gaussian, so ``Z_J | Z_{-J}`` is Gaussian with the usual conditional mean and covariance, and
``X = F^-1(Phi(Z))``. ``Var(Y)`` comes from ``n n_inner`` further i.i.d. rows, so the design has
``n n_inner (2^d - 1)`` rows and ``analyze`` recovers ``n`` from the row count.

``Sh`` is normalised by ``Var(Y)`` (effects sum to 1); ``Sh_conf`` is the bootstrap half-width
(outer draws resampled within each subset); ``Sh_var`` is in output units squared.

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


def _check_d(problem: Problem) -> None:
    if problem.d > MAX_D:
        raise ValueError(
            f"shapley: exact-permutation Shapley effects need 2^d - 2 subsets; d = {problem.d} "
            f"exceeds the supported {MAX_D}"
        )


def sample(problem: Problem, n: int, *, seed: int | None, n_inner: int = 3) -> np.ndarray:
    """Design for Shapley effects: ``n n_inner (2^d - 1)`` parameter rows.

    Parameters
    ----------
    problem : Problem
        Parameters, possibly correlated through the Gaussian copula.
    n : int
        Outer draws per subset.
    seed : int or None
    n_inner : int
        Conditional draws per outer draw (>= 2; Song et al. recommend 3).
    """
    _check_d(problem)
    if n_inner < 2 or n < 2:
        raise ValueError(f"shapley: need n >= 2 and n_inner >= 2; got n={n}, n_inner={n_inner}")
    d, R = problem.d, problem.correlation
    rng = np.random.default_rng(seed)
    L = np.linalg.cholesky(R)
    blocks = [rng.standard_normal((n * n_inner, d)) @ L.T]
    for mask in _subsets(d):
        J = _members(mask, d)
        K = np.setdiff1d(np.arange(d), J)
        Z_K = rng.standard_normal((n, len(K))) @ np.linalg.cholesky(R[np.ix_(K, K)]).T
        A = np.linalg.solve(R[np.ix_(K, K)], R[np.ix_(K, J)])  # (|K|, |J|)
        cov = R[np.ix_(J, J)] - R[np.ix_(J, K)] @ A
        mean = Z_K @ A  # (n, |J|)
        eps = rng.standard_normal((n, n_inner, len(J))) @ np.linalg.cholesky(cov).T
        Z = np.empty((n, n_inner, d))
        Z[:, :, K] = Z_K[:, None, :]
        Z[:, :, J] = mean[:, None, :] + eps
        blocks.append(Z.reshape(n * n_inner, d))
    return problem.from_normal_scores(np.concatenate(blocks))


def _shapley_columns(
    Y: np.ndarray, d: int, n: int, n_inner: int, num_resamples: int, z: float, seed: int | None
) -> dict[str, np.ndarray]:
    m = Y.shape[1]
    nv = n * n_inner
    subsets = _subsets(d)
    cond = (
        Y[nv:].reshape(len(subsets), n, n_inner, m).var(axis=2, ddof=1)
    )  # (n_sub, n, m): Var(Y | X_{-J}) for each outer draw
    W = _weights(d)
    masks = np.array(subsets)

    def effects(c_sub: np.ndarray, var: np.ndarray) -> np.ndarray:
        c = np.zeros((2**d, c_sub.shape[-1]))
        c[masks] = c_sub
        c[2**d - 1] = var
        return W @ c  # (d, m)

    var = Y[:nv].var(axis=0, ddof=1)
    sh = effects(cond.mean(axis=1), var)
    rng = np.random.default_rng(seed)
    boot_norm = np.empty((num_resamples, d, m))
    for b in range(num_resamples):
        idx = rng.integers(0, n, (len(subsets), n))
        c_b = np.take_along_axis(cond, idx[:, :, None], axis=1).mean(axis=1)
        var_b = Y[rng.integers(0, nv, nv)].var(axis=0, ddof=1)
        boot_norm[b] = effects(c_b, var_b) / var_b
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "Sh": (sh / var).T,
            "Sh_conf": (z * boot_norm.std(axis=0, ddof=1)).T,
            "Sh_var": sh.T,
            "variance": var,
        }


def analyze(
    problem: Problem,
    X: np.ndarray,
    Y: Any,
    *,
    seed: int | None,
    n_inner: int = 3,
    num_resamples: int = 200,
    conf_level: float = 0.95,
    dims: Sequence[str] | None = None,
) -> xr.Dataset:
    """Shapley effects from the design of :func:`sample`.

    Parameters
    ----------
    problem : Problem
    X : ndarray, shape (n n_inner (2^d - 1), d)
        The design of :func:`sample` (with the same ``n_inner``).
    Y, seed, num_resamples, conf_level, dims
        As :func:`credibility.sensitivity.sobol.analyze`.

    Returns
    -------
    xarray.Dataset
        ``Sh``, ``Sh_conf`` (fractions of variance), ``Sh_var`` (output units squared) dims
        ``(output, parameter, *extra)``; ``variance`` dims ``(output, *extra)``.
    """
    _check_d(problem)
    X = check_rows(X, problem.d, "shapley")
    per = n_inner * (2**problem.d - 1)
    if len(X) % per:
        raise ValueError(f"shapley: {len(X)} rows is not a multiple of n_inner (2^d - 1) = {per}")
    n = len(X) // per
    outputs = as_outputs(Y, len(X), dims)
    z = z_value(conf_level)

    def columns(Y2: np.ndarray) -> dict[str, np.ndarray]:
        return _shapley_columns(Y2, problem.d, n, n_inner, num_resamples, z, seed)

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
        "n_outer": n,
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
