"""Entropy balancing with bounded weights: the dual problem, solved with scipy.optimize.

Given base weights ``q`` (sum 1; the cohort's sampling weights) and moment conditions
``c_i`` (one row per patient, columns of :meth:`cohorts.evaluate.BoundTargets.moments`),
find weights ``w = q g`` closest to ``q`` in Kullback-Leibler divergence,

    minimise  sum_i w_i log(w_i / q_i)   subject to   sum_i w_i c_i = 0,  sum_i w_i = 1,
              lower <= g_i <= upper,

(Hainmueller 2012). The solution is ``g_i = clip(exp(nu + lambda . z_i), lower, upper)``
with ``z`` the conditions scaled to unit root-mean-square under ``q``; ``(nu, lambda)``
minimise the convex dual

    f(nu, lambda) = sum_i q_i psi(nu + lambda . z_i) - nu + ridge/2 |lambda|^2,

where ``psi(eta) = exp(eta)`` between ``log lower`` and ``log upper`` and continues linearly
(with slope ``upper`` or ``lower``) outside: ``psi' = g`` is the clipped weight, so the
gradient is the vector of weighted moment conditions and the bounds hold by construction.
Without bounds this is Hainmueller's dual exactly; with categorical margins only it is
raking (iterative proportional fitting converges to the same minimum-discrimination
solution: Ireland & Kullback 1968; Deville & Saerndal 1992).

*Relaxed problem.* With ``ridge > 0`` the conditions become a penalty: minimise
``KL(w, q) + sum_j (sum_i w_i c_ij / t_j)^2 / (2 ridge)`` with tolerances ``t_j`` (e.g. the
targets' interval half-widths in the units of the conditions); on the dual side this adds
``ridge/2 sum_j (t_j / s_j)^2 lambda_j^2`` (``s_j`` the RMS scale). Such weights exist for
any targets and, for small ``ridge``, come as close to them (in units of ``t``) as the bounds
allow: this is how the nearest achievable cohort to infeasible targets is found.

The dual is minimised by ``scipy.optimize.minimize(method="trust-exact")`` with the exact
gradient and (generalised) Hessian; every evaluation is a few vectorised passes over the
patients (the Hessian in blocks of rows, so memory stays at the condition matrix plus
one block).

References
----------
Hainmueller J. Entropy balancing for causal effects: a multivariate reweighting method to
produce balanced samples in observational studies. Political Analysis 2012;20:25-46.
doi:10.1093/pan/mpr025
Ireland CT, Kullback S. Contingency tables with given marginals. Biometrika
1968;55:179-188. doi:10.1093/biomet/55.1.179
Deville JC, Saerndal CE. Calibration estimators in survey sampling. J Am Stat Assoc
1992;87:376-382. doi:10.1080/01621459.1992.10475217
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from .errors import MatchError

__all__ = ["BalanceResult", "entropy_balance"]

_BLOCK = 1 << 16  # rows per block of the Hessian accumulation
#: Dual coefficients beyond this (unit-RMS conditions: a factor e^1000) mean divergence.
_DIVERGED = 1e3


@dataclass(frozen=True)
class BalanceResult:
    """Weights found by :func:`entropy_balance`.

    Attributes
    ----------
    factor : ndarray
        ``g``: matching weight relative to the base weight; ``sum(q g) = 1``.
    residual : ndarray
        ``sum_i q_i g_i z_ij`` for every condition (unit-RMS scale; 0 when met).
    theta : ndarray
        ``(nu, lambda)``: the dual solution on the unit-RMS scale.
    scale : ndarray
        Root-mean-square of each condition under ``q`` (0: condition met by every patient).
    converged : bool
        Every condition met to ``tol``.
    iterations : int
    message : str
    """

    factor: np.ndarray
    residual: np.ndarray
    theta: np.ndarray
    scale: np.ndarray
    converged: bool
    iterations: int
    message: str


class _Dual:
    """The dual objective with its gradient and Hessian, cached per point."""

    def __init__(self, z, q, lower, upper, ridge: np.ndarray):
        self.z, self.q, self.ridge = z, q, ridge
        self.log_lo = math.log(lower) if lower > 0 else -math.inf
        self.log_hi = math.log(upper) if math.isfinite(upper) else math.inf
        self.lower, self.upper = lower, upper
        self._at: bytes | None = None

    def _eval(self, theta):
        key = theta.tobytes()
        if key == self._at:
            return
        nu, lam = theta[0], theta[1:]
        eta = nu + self.z @ lam
        inside = (eta > self.log_lo) & (eta < self.log_hi)
        e = np.exp(np.clip(eta, self.log_lo, min(self.log_hi, 700.0)))
        psi = np.where(inside, e, 0.0)
        if math.isfinite(self.log_hi):
            hi = eta >= self.log_hi
            psi = np.where(hi, self.upper * (eta - self.log_hi + 1.0), psi)
        if self.lower > 0:
            lo = eta <= self.log_lo
            psi = np.where(lo, self.lower * (eta - self.log_lo + 1.0), psi)
        self.g = e  # psi' : the clipped weight factor
        self.curv = np.where(inside, self.q * e, 0.0)  # q psi''
        qg = self.q * e
        self.f = float(self.q @ psi) - nu + 0.5 * float(self.ridge @ (lam * lam))
        self.grad = np.concatenate(([qg.sum() - 1.0], self.z.T @ qg + self.ridge * lam))
        self._at = key

    def fun(self, theta):
        self._eval(theta)
        return self.f

    def jac(self, theta):
        self._eval(theta)
        return self.grad

    def hess(self, theta):
        self._eval(theta)
        k = self.z.shape[1]
        h = np.empty((k + 1, k + 1))
        d = self.curv
        h[0, 0] = d.sum()
        h[0, 1:] = h[1:, 0] = self.z.T @ d
        zz = np.zeros((k, k))
        for start in range(0, self.z.shape[0], _BLOCK):
            zb = self.z[start : start + _BLOCK]
            zz += (zb * d[start : start + _BLOCK, None]).T @ zb
        h[1:, 1:] = zz + np.diag(self.ridge)
        return h


def entropy_balance(
    conditions: np.ndarray,
    base: np.ndarray,
    *,
    upper: float = math.inf,
    lower: float = 0.0,
    ridge: float = 0.0,
    tolerances: np.ndarray | None = None,
    theta0: np.ndarray | None = None,
    tol: float = 1e-8,
    max_iter: int = 200,
) -> BalanceResult:
    """Entropy-balancing weights meeting ``sum_i w_i c_i = 0`` with ``lower <= w/q <= upper``.

    Parameters
    ----------
    conditions : ndarray, shape (n, k)
        Moment conditions ``c_ij`` (target 0), float64. Scaled in place to unit RMS.
    base : ndarray, shape (n,)
        Base weights ``q >= 0`` (normalised here to sum 1).
    upper, lower : float
        Bounds of the factor ``g = w / q`` (``sum q g = 1``, so ``g`` averages 1 under ``q``);
        ``upper > 1 > lower >= 0``.
    ridge : float
        Penalty weight of the relaxed problem (0: the conditions are exact).
    tolerances : ndarray, shape (k,), optional
        ``t_j`` of the relaxed problem, in the units of the conditions (default the RMS).
    theta0 : ndarray, shape (k + 1,), optional
        Starting point ``(nu, lambda)`` on the unit-RMS scale (a previous result's
        ``theta``, to continue from a larger ``ridge``).
    tol : float
        Largest allowed ``|sum q g z|`` of a condition on the unit-RMS scale.
    max_iter : int

    Returns
    -------
    BalanceResult
        ``converged`` is False when the conditions cannot all be met within the bounds.

    Examples
    --------
    >>> x = np.array([0.0, 1.0, 2.0, 3.0])
    >>> res = entropy_balance((x - 2.0)[:, None], np.ones(4))
    >>> round(float(np.sum(res.factor * x) / 4), 6)
    2.0
    """
    if not upper > 1.0 > lower >= 0.0:
        raise MatchError(f"bounds must satisfy upper > 1 > lower >= 0; got {lower}, {upper}")
    q = np.asarray(base, dtype=float)
    q = q / q.sum()
    z = conditions
    scale = np.sqrt(np.einsum("i,ij,ij->j", q, z, z))
    active = scale > 0
    z[:, active] /= scale[active]
    ridges = np.zeros(z.shape[1])
    if ridge > 0:
        t = scale if tolerances is None else np.asarray(tolerances, dtype=float)
        ridges[active] = ridge * (t[active] / scale[active]) ** 2
    dual = _Dual(z, q, lower, upper, ridges)
    theta0 = np.zeros(z.shape[1] + 1) if theta0 is None else np.asarray(theta0, dtype=float)

    def diverging(intermediate_result):
        # infeasible conditions: the dual decreases without bound along some direction
        if np.max(np.abs(intermediate_result.x)) > _DIVERGED:
            raise StopIteration

    res = optimize.minimize(
        dual.fun,
        theta0,
        jac=dual.jac,
        hess=dual.hess,
        method="trust-exact",
        callback=diverging,
        options={"gtol": tol * 1e-2, "maxiter": max_iter},
    )
    dual._eval(res.x)
    g = dual.g.copy()
    residual = z.T @ (q * g)
    norm_gap = abs(float(q @ g) - 1.0)
    converged = bool(np.all(np.abs(residual) <= tol) and norm_gap <= tol)
    return BalanceResult(
        factor=g / float(q @ g),
        residual=residual,
        theta=res.x,
        scale=scale,
        converged=converged,
        iterations=int(res.nit),
        message=str(res.message),
    )
