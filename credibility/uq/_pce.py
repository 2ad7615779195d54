"""Polynomial chaos expansions on the germ of a :class:`~credibility._problem.Problem`.

Orthonormal univariate polynomials come from chaospy's three-term recurrence coefficients
(discretised Stieltjes, ``chaospy.stieltjes``); quadrature nodes from
``chaospy.generate_quadrature``. The multivariate basis is the total-order set of
``numpoly.glexindex``. Coefficients are fitted for all output columns at once (one design
matrix), so per-patient outputs cost one least-squares solve.

References
----------
Xiu, D. & Karniadakis, G. E. (2002). The Wiener-Askey polynomial chaos for stochastic
differential equations. SIAM J. Sci. Comput. 24(2), 619-644. doi:10.1137/S1064827501387826
Blatman, G. & Sudret, B. (2010). An adaptive algorithm to build up sparse polynomial chaos
expansions for stochastic finite element analysis. Probab. Eng. Mech. 25(2), 183-197.
doi:10.1016/j.probengmech.2009.10.003 (leave-one-out error).
Sudret, B. (2008). Global sensitivity analysis using polynomial chaos expansions. Reliab. Eng.
Syst. Saf. 93(7), 964-979. doi:10.1016/j.ress.2007.04.002 (Sobol indices from coefficients).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import chaospy
import numpoly
import numpy as np
from scipy import linalg

if TYPE_CHECKING:
    from credibility._problem import Problem

__all__ = [
    "PCE",
    "design_matrix",
    "fit_collocation",
    "fit_spectral",
    "least_squares",
    "quadrature",
    "sobol_from_coefficients",
]

#: Least-squares designs need at least this many rows per basis term when the order is chosen
#: automatically (Hosder et al. 2007 recommend an oversampling ratio of about 2).
OVERSAMPLING = 1.5


def _multi_indices(d: int, order: int) -> np.ndarray:
    return np.asarray(
        numpoly.glexindex(
            start=0, stop=order + 1, dimensions=d, graded=True, reverse=True, cross_truncation=1.0
        ),
        dtype=int,
    )


def _n_terms(d: int, order: int) -> int:
    from math import comb

    return comb(d + order, d)


def _recurrence(problem: Problem, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Monic three-term recurrence coefficients ``alpha, beta`` of shape (d, order + 1)."""
    coeffs, _, _ = chaospy.stieltjes(order, problem.germ)
    return np.asarray(coeffs[0], dtype=float), np.asarray(coeffs[1], dtype=float)


def _univariate(xi: np.ndarray, alpha: np.ndarray, beta: np.ndarray, order: int) -> np.ndarray:
    """Orthonormal polynomials ``phi_k(xi_i)``: array (order + 1, n, d)."""
    n, d = xi.shape
    out = np.empty((order + 1, n, d))
    out[0] = 1.0
    prev = np.zeros((n, d))
    cur = np.ones((n, d))
    norm = np.ones(d)
    for k in range(order):
        nxt = (xi - alpha[:, k]) * cur - beta[:, k] * prev
        prev, cur = cur, nxt
        norm = norm * beta[:, k + 1]
        out[k + 1] = cur / np.sqrt(norm)
    return out


@dataclass(frozen=True)
class PCE:
    """A fitted orthonormal PCE of several output columns.

    Attributes
    ----------
    order : int
        Total polynomial order.
    indices : ndarray, shape (P, d)
        Multi-index of each basis term (row 0 is the constant).
    coefficients : ndarray, shape (P, m)
        Coefficients for each of the ``m`` output columns.
    loo_error : ndarray, shape (m,)
        Relative leave-one-out error ``mean(e_loo^2) / var(y)`` (Blatman & Sudret 2010).
    alpha, beta : ndarray
        Recurrence coefficients used to evaluate the basis.
    """

    order: int
    indices: np.ndarray
    coefficients: np.ndarray
    loo_error: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray

    def basis(self, xi: np.ndarray) -> np.ndarray:
        """Basis matrix (n, P) at germ rows ``xi``."""
        uni = _univariate(np.atleast_2d(xi), self.alpha, self.beta, self.order)
        d = self.indices.shape[1]
        out = uni[self.indices[:, 0], :, 0]
        for i in range(1, d):
            out = out * uni[self.indices[:, i], :, i]
        return out.T

    def __call__(self, xi: np.ndarray) -> np.ndarray:
        """Surrogate values (n, m) at germ rows ``xi``."""
        return self.basis(xi) @ self.coefficients

    @property
    def mean(self) -> np.ndarray:
        return self.coefficients[0]

    @property
    def variance(self) -> np.ndarray:
        return np.sum(self.coefficients[1:] ** 2, axis=0)


def design_matrix(
    problem: Problem, xi: np.ndarray, order: int, recurrence: tuple | None = None
) -> tuple[np.ndarray, PCE]:
    """Basis matrix (n, P) at germ rows ``xi`` and an unfitted :class:`PCE` of that basis.

    ``recurrence`` may hold coefficients of a higher order (they are sliced).
    """
    alpha, beta = recurrence if recurrence is not None else _recurrence(problem, order)
    alpha, beta = alpha[:, : order + 1], beta[:, : order + 1]
    idx = _multi_indices(problem.d, order)
    proto = PCE(order, idx, np.zeros((len(idx), 0)), np.zeros(0), alpha, beta)
    return proto.basis(xi), proto


def least_squares(Phi: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares coefficients (P, m) and relative LOO errors (m,) of columns ``Y``.

    The leave-one-out residuals are ``r_i / (1 - h_i)`` with ``h`` the diagonal of the hat
    matrix (Blatman & Sudret 2010, eq. 19), so no refit is needed.
    """
    Q, Rm = linalg.qr(Phi, mode="economic")
    coef = linalg.solve_triangular(Rm, Q.T @ Y)
    h = np.sum(Q**2, axis=1)
    e_loo = (Y - Phi @ coef) / np.maximum(1.0 - h, 1e-12)[:, None]
    var = np.var(Y, axis=0)
    return coef, np.mean(e_loo**2, axis=0) / np.where(var > 0, var, 1.0)


def fit_collocation(
    problem: Problem, X: np.ndarray, Y: np.ndarray, *, order: int | None = None, max_order: int = 12
) -> PCE:
    """Point-collocation (least-squares regression) PCE of columns ``Y`` (n, m) at rows ``X``.

    With ``order=None`` the order with the smallest mean leave-one-out error is chosen among
    ``1 … max_order`` whose number of terms ``P`` satisfies ``n >= 1.5 P``.
    """
    X = np.asarray(X, dtype=float)
    Y = np.asarray(Y, dtype=float).reshape(len(X), -1)
    xi = problem.to_germ(X)
    n = len(X)
    if order is None:
        orders = [p for p in range(1, max_order + 1) if n >= OVERSAMPLING * _n_terms(problem.d, p)]
        if not orders:
            raise ValueError(
                f"point collocation needs at least {int(np.ceil(OVERSAMPLING * (problem.d + 1)))}"
                f" rows for {problem.d} parameters; got {n}"
            )
    else:
        if n < _n_terms(problem.d, order):
            raise ValueError(
                f"order {order} needs at least {_n_terms(problem.d, order)} rows; got {n}"
            )
        orders = [order]
    rec = _recurrence(problem, max(orders))
    best = None
    for p in orders:
        Phi, proto = design_matrix(problem, xi, p, rec)
        coef, loo = least_squares(Phi, Y)
        fit = PCE(p, proto.indices, coef, loo, proto.alpha, proto.beta)
        if best is None or np.nanmean(loo) < np.nanmean(best.loo_error):
            best = fit
    return best


def quadrature(problem: Problem, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Full-tensor Gaussian quadrature on the germ: nodes ``xi`` (N, d), weights (N,).

    ``N = (order + 1) ** d``; exact for polynomials of degree ``2 order + 1`` in each variable.
    """
    nodes, weights = chaospy.generate_quadrature(order, problem.germ, rule="gaussian")
    return np.asarray(nodes, dtype=float).T, np.asarray(weights, dtype=float)


def fit_spectral(problem: Problem, X: np.ndarray, Y: np.ndarray, *, order: int) -> PCE:
    """Pseudo-spectral projection PCE of total order ``order`` from the quadrature of that order.

    ``X`` must be the rows of ``problem.from_germ(quadrature(problem, order)[0])``. The
    leave-one-out error is that of the equivalent weighted least-squares fit on the nodes
    (``H = Phi Phi^T W``, exact because the quadrature integrates the basis products exactly).
    """
    xi_nodes, w = quadrature(problem, order)
    X = np.asarray(X, dtype=float)
    if X.shape != xi_nodes.shape:
        raise ValueError(
            f"pseudo-spectral order {order} needs the {len(xi_nodes)} quadrature nodes "
            f"from credibility.uq.sample(..., method='pce_spectral'); got X of shape {X.shape}"
        )
    Y = np.asarray(Y, dtype=float).reshape(len(X), -1)
    Phi, proto = design_matrix(problem, xi_nodes, order)
    coef = Phi.T @ (w[:, None] * Y)
    h = w * np.sum(Phi**2, axis=1)
    resid = Y - Phi @ coef
    e_loo = resid / np.maximum(1.0 - h, 1e-12)[:, None]
    mean = w @ Y
    var = w @ (Y - mean) ** 2
    loo = (w @ e_loo**2) / np.where(var > 0, var, 1.0)
    return PCE(order, proto.indices, coef, loo, proto.alpha, proto.beta)


def sobol_from_coefficients(pce: PCE) -> dict[str, np.ndarray]:
    """First, total and second-order Sobol indices of each column (Sudret 2008).

    Returns ``S1``, ``ST`` of shape (m, d) and ``S2`` of shape (m, d, d) (upper triangle filled,
    the rest NaN, as SALib does).
    """
    c2 = pce.coefficients[1:] ** 2
    active = pce.indices[1:] > 0
    var = c2.sum(axis=0)
    var = np.where(var > 0, var, np.nan)
    n_active = active.sum(axis=1)
    only = active & (n_active == 1)[:, None]
    S1 = (only.T.astype(float) @ c2 / var).T
    ST = (active.T.astype(float) @ c2 / var).T
    d = active.shape[1]
    S2 = np.full((c2.shape[1], d, d), np.nan)
    pair = n_active == 2
    for i in range(d):
        for j in range(i + 1, d):
            sel = pair & active[:, i] & active[:, j]
            S2[:, i, j] = c2[sel].sum(axis=0) / var
    return {"S1": S1, "ST": ST, "S2": S2}
