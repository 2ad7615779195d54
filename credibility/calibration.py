"""Bayesian calibration of model parameters on a polynomial-chaos emulator.

The model is run at a space-filling design of the calibration parameters (a scrambled Sobol
sequence in their prior box); for every calibration comparator the virtual cohort's statistic
at each design point is emulated by a point-collocation PCE (:mod:`credibility.uq`), and the
posterior of the parameters given the published figures is computed on the emulator:

    p(θ | D) ∝ p(θ) · Π_r N(D_r; S_r(θ), u_D,r² + u_sim,r² + u_emu,r²)

with a uniform prior on the box, ``S_r`` the emulated statistic of row ``r``, ``u_D`` the
comparator's own uncertainty, ``u_sim`` the Monte Carlo error of the finite virtual cohort
and ``u_emu`` the emulator's leave-one-out error. The posterior is sampled by adaptive
importance sampling (a Sobol sample of the prior, then Gaussian proposals fitted to the
weighted sample; Cappé et al. 2004), which is exact for any number of parameters once the
effective sample size is large. Estimates are the posterior mean, SD and equal-tailed
intervals; the MAP is refined by Nelder–Mead on the emulator.

Leave-one-study-out cross-validation (:func:`leave_one_study_out`) refits the posterior
without each study and predicts that study's rows: the predictive error of data the
parameters were not fitted to.

References
----------
Kennedy MC, O'Hagan A. Bayesian calibration of computer models. J R Stat Soc B
2001;63:425–464. doi:10.1111/1467-9868.00294
Marzouk YM, Najm HN, Rahn LA. Stochastic spectral methods for efficient Bayesian solution of
inverse problems. J Comput Phys 2007;224:560–586. doi:10.1016/j.jcp.2006.10.010 (PCE emulator)
Cappé O, Guillin A, Marin JM, Robert CP. Population Monte Carlo. J Comput Graph Stat
2004;13:907–929. doi:10.1198/106186004X12803
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, stats
from scipy.stats import qmc

from ._problem import Problem
from .errors import CredibilityError
from .statistics import kish_n
from .uq._pce import PCE, fit_collocation

__all__ = [
    "CalibrationError",
    "Emulator",
    "Posterior",
    "design",
    "fit_emulator",
    "leave_one_study_out",
    "posterior",
]


class CalibrationError(CredibilityError):
    """Calibration cannot proceed (no rows, too few design points, a degenerate posterior)."""


def design(problem: Problem, n: int, *, seed: int) -> np.ndarray:
    """A scrambled Sobol design of ``n`` parameter rows in the prior (Owen scrambling).

    Parameters
    ----------
    problem : Problem
        Calibration parameters with their (uniform) priors.
    n : int
        Number of design points.
    seed : int

    Returns
    -------
    ndarray, shape (n, d)
    """
    sampler = qmc.Sobol(problem.d, scramble=True, seed=seed)
    return problem.from_unit(sampler.random(int(n)))


_EPS = 1e-3


def _forward(Y: np.ndarray, logit: np.ndarray) -> np.ndarray:
    Z = np.array(Y, dtype=float, copy=True)
    p = np.clip(Z[:, logit], _EPS, 1.0 - _EPS)
    Z[:, logit] = np.log(p / (1.0 - p))
    return Z


def _backward(Z: np.ndarray, logit: np.ndarray) -> np.ndarray:
    Y = np.array(Z, dtype=float, copy=True)
    Y[:, logit] = 1.0 / (1.0 + np.exp(-Z[:, logit]))
    return Y


@dataclass(frozen=True)
class Emulator:
    """PCE emulators of the calibration statistics.

    Proportions are emulated on the logit scale (a proportion's response to a parameter is
    sigmoid, which a low-order polynomial of the logit follows far better) and returned as
    proportions.

    Attributes
    ----------
    problem : Problem
    pce : PCE
        One output column per calibration row (logit scale for proportions).
    logit : ndarray of bool, shape (m,)
        Columns emulated on the logit scale.
    error : ndarray, shape (m,)
        Root-mean-square leave-one-out error of each column, on the statistic's own scale.
    """

    problem: Problem
    pce: PCE
    logit: np.ndarray
    error: np.ndarray

    def __call__(self, X: np.ndarray) -> np.ndarray:
        """Emulated statistics (n, m) at parameter rows ``X`` (n, d)."""
        return _backward(self.pce(self.problem.to_germ(np.atleast_2d(X))), self.logit)


def fit_emulator(
    problem: Problem, X: np.ndarray, Y: np.ndarray, *, proportion: Sequence[bool] | None = None
) -> Emulator:
    """Fit the emulator of statistics ``Y`` (n, m) at design ``X`` (n, d).

    The PCE order is chosen by the smallest leave-one-out error (Blatman & Sudret 2010); the
    leave-one-out residuals (hat-matrix identity, no refit) are taken back to each statistic's
    own scale for :attr:`Emulator.error`.

    Parameters
    ----------
    problem : Problem
    X : ndarray, shape (n, d)
    Y : ndarray, shape (n, m)
    proportion : sequence of bool, optional
        Columns that are proportions (emulated on the logit scale).

    Raises
    ------
    CalibrationError
        If ``Y`` has non-finite values (a design point without valid virtual patients).
    """
    Y = np.asarray(Y, dtype=float)
    if not np.isfinite(Y).all():
        bad = sorted(set(np.argwhere(~np.isfinite(Y))[:, 1].tolist()))
        raise CalibrationError(
            f"calibration statistics {bad} are not finite at some design points (no valid "
            "virtual patient in the row's stratum); widen the prior or the cohort"
        )
    logit = np.zeros(Y.shape[1], dtype=bool) if proportion is None else np.asarray(proportion, bool)
    Z = _forward(Y, logit)
    pce = fit_collocation(problem, X, Z)
    Phi = pce.basis(problem.to_germ(X))
    Q, _ = np.linalg.qr(Phi)
    h = np.sum(Q**2, axis=1)
    z_loo = Z - (Z - Phi @ pce.coefficients) / np.maximum(1.0 - h, 1e-12)[:, None]
    error = np.sqrt(np.mean((_backward(z_loo, logit) - Y) ** 2, axis=0))
    return Emulator(problem, pce, logit, error)


@dataclass(frozen=True)
class Posterior:
    """Weighted posterior sample of the calibration parameters.

    Attributes
    ----------
    names : tuple of str
    samples : ndarray, shape (N, d)
    weights : ndarray, shape (N,)
        Normalised importance weights.
    map : ndarray, shape (d,)
        Maximum a posteriori point (on the emulator).
    ess : float
        Kish effective sample size of the weights.
    """

    names: tuple[str, ...]
    samples: np.ndarray
    weights: np.ndarray
    map: np.ndarray
    ess: float

    @property
    def mean(self) -> np.ndarray:
        return self.weights @ self.samples

    @property
    def sd(self) -> np.ndarray:
        return np.sqrt(self.weights @ (self.samples - self.mean) ** 2)

    def quantile(self, q: float) -> np.ndarray:
        """Weighted quantile ``q`` of each parameter."""
        out = []
        for j in range(self.samples.shape[1]):
            order = np.argsort(self.samples[:, j])
            cw = np.cumsum(self.weights[order])
            out.append(self.samples[order, j][min(np.searchsorted(cw, q), len(cw) - 1)])
        return np.asarray(out)

    def table(self, conf: float = 0.95) -> pd.DataFrame:
        """Estimate, SD, interval and MAP per parameter."""
        a = (1.0 - conf) / 2.0
        return pd.DataFrame(
            {
                "parameter": list(self.names),
                "estimate": self.mean,
                "sd": self.sd,
                "ci_low": self.quantile(a),
                "ci_high": self.quantile(1.0 - a),
                "map": self.map,
            }
        )


def _log_likelihood(pred: np.ndarray, observed: np.ndarray, variance: np.ndarray) -> np.ndarray:
    return -0.5 * np.sum((pred - observed) ** 2 / variance, axis=-1)


def posterior(
    emulator: Emulator,
    observed: Sequence[float],
    u_obs: Sequence[float],
    *,
    columns: Sequence[int] | None = None,
    n: int = 2**13,
    rounds: int = 4,
    seed: int = 0,
) -> Posterior:
    """Posterior of the parameters given the observed statistics (uniform prior on the box).

    Parameters
    ----------
    emulator : Emulator
    observed : sequence of float, length m
        Published values ``D_r``.
    u_obs : sequence of float, length m
        ``sqrt(u_D² + u_sim²)`` of each row (the emulator error is added here).
    columns : sequence of int, optional
        Rows to condition on (default all; leave-one-study-out passes a subset).
    n : int
        Samples per importance-sampling round.
    rounds : int
        Adaptive rounds after the prior round.
    seed : int

    Returns
    -------
    Posterior

    Raises
    ------
    CalibrationError
        If no row is given.
    """
    problem = emulator.problem
    cols = np.arange(len(observed)) if columns is None else np.asarray(columns, dtype=int)
    if cols.size == 0:
        raise CalibrationError("no calibration rows to condition on")
    obs = np.asarray(observed, dtype=float)[cols]
    var = np.asarray(u_obs, dtype=float)[cols] ** 2 + emulator.error[cols] ** 2
    var = np.maximum(var, 1e-12)
    lows = np.array([p["low"] for p in problem.params])
    highs = np.array([p["high"] for p in problem.params])

    def loglik(X: np.ndarray) -> np.ndarray:
        return _log_likelihood(emulator(X)[:, cols], obs, var)

    rng = np.random.default_rng(seed)
    X = problem.from_unit(qmc.Sobol(problem.d, scramble=True, seed=seed).random(n))
    logw = loglik(X)
    for _ in range(rounds):
        w = np.exp(logw - logw.max())
        w /= w.sum()
        mean = w @ X
        cov = np.atleast_2d(np.cov(X.T, aweights=w)) * 1.5 + np.diag(((highs - lows) * 1e-4) ** 2)
        proposal = stats.multivariate_normal(mean, cov, allow_singular=True)
        Xn = proposal.rvs(size=n, random_state=rng).reshape(n, -1)
        inside = np.all((Xn >= lows) & (Xn <= highs), axis=1)
        Xn = Xn[inside]
        if len(Xn) < 10:
            break
        # uniform prior: weight = likelihood / proposal density (truncation is a constant)
        logw_n = loglik(Xn) - proposal.logpdf(Xn)
        X, logw = Xn, np.atleast_1d(logw_n)
    w = np.exp(logw - logw.max())
    w /= w.sum()
    ess = kish_n(w)
    start = X[np.argmax(loglik(X))]

    def objective(theta: np.ndarray) -> float:
        if np.any(theta < lows) or np.any(theta > highs):
            return np.inf
        return -float(loglik(theta[None, :])[0])

    best = optimize.minimize(objective, start, method="Nelder-Mead", options={"xatol": 1e-6})
    theta_map = best.x if np.isfinite(best.fun) else start
    return Posterior(tuple(problem.names), X, w, np.asarray(theta_map, dtype=float), ess)


def leave_one_study_out(
    emulator: Emulator,
    observed: Sequence[float],
    u_obs: Sequence[float],
    studies: Sequence[str],
    *,
    seed: int = 0,
    n: int = 2**12,
) -> pd.DataFrame:
    """Predict each study's rows from a posterior fitted to the other studies.

    Parameters
    ----------
    emulator : Emulator
    observed, u_obs : sequence of float
        As for :func:`posterior`.
    studies : sequence of str
        Study of each row.
    seed : int
    n : int
        Samples per importance-sampling round.

    Returns
    -------
    pandas.DataFrame
        Per row: ``study``, ``observed``, ``predicted`` (posterior predictive mean without
        the study), ``predictive_sd`` (its SD, with u_D, u_sim and the emulator error),
        ``error``, ``z`` (error / predictive SD). Empty when there are fewer than two
        studies.
    """
    studies = np.asarray(studies)
    names = list(dict.fromkeys(studies.tolist()))
    observed = np.asarray(observed, dtype=float)
    u_obs = np.asarray(u_obs, dtype=float)
    rows = []
    if len(names) < 2:
        return pd.DataFrame(
            columns=["study", "row", "observed", "predicted", "predictive_sd", "error", "z"]
        )
    for study in names:
        held = np.flatnonzero(studies == study)
        kept = np.flatnonzero(studies != study)
        post = posterior(emulator, observed, u_obs, columns=kept, n=n, seed=seed)
        pred = emulator(post.samples)[:, held]
        mean = post.weights @ pred
        spread = np.sqrt(post.weights @ (pred - mean) ** 2)
        sd = np.sqrt(spread**2 + u_obs[held] ** 2 + emulator.error[held] ** 2)
        for j, r in enumerate(held):
            err = mean[j] - observed[r]
            rows.append(
                {
                    "study": study,
                    "row": int(r),
                    "observed": float(observed[r]),
                    "predicted": float(mean[j]),
                    "predictive_sd": float(sd[j]),
                    "error": float(err),
                    "z": float(err / sd[j]) if sd[j] > 0 else np.nan,
                }
            )
    return pd.DataFrame(rows)
