"""Uncertainty quantification of model parameters: Monte Carlo and polynomial chaos.

Problems (uncertain parameters with marginals and a Gaussian-copula correlation) come from the
``uncertainty`` config block through :func:`problem_from_config`; see
:mod:`credibility._problem` for the format.

Uniform API: ``sample(problem, n, *, seed, method)`` gives parameter rows,
``analyze(problem, X, Y, *, seed, method)`` summarises outputs ``Y`` (first axis = row; extra
axes such as ``patient`` or ``time`` are kept, named by ``dims``) into moments, quantiles and
prediction intervals; :func:`propagate` does both through a model ``evaluate(X)``.
:func:`trial_outcome` turns per-sample, per-patient binary events into a population-level
interval that combines parameter and sampling (patient) uncertainty.

Methods
-------
``mc``
    Plain Monte Carlo (i.i.d. rows; Monte Carlo standard error of the mean reported).
``pce_collocation``
    Orthonormal PCE fitted by least squares on ``n`` scrambled-Sobol' rows of the germ; order
    by leave-one-out error unless given (Blatman & Sudret 2010, doi:10.1016/j.probengmech.2009.10.003).
``pce_spectral``
    Pseudo-spectral projection with full-tensor Gaussian quadrature of ``order`` (``(order+1)^d``
    rows) (Xiu 2010, *Numerical Methods for Stochastic Computations*, Princeton UP).

For PCE, moments come from the coefficients and quantiles from ``n_surrogate`` draws of the
surrogate; ``loo_error`` is the relative leave-one-out error. Dependent parameters are handled
by building the PCE on the independent germ (Rosenblatt/Nataf transform).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr
from scipy.stats import qmc

from credibility._problem import Problem, UncertaintySpecError, problem_from_config
from credibility.sensitivity._common import as_outputs
from credibility.uq._pce import PCE, fit_collocation, fit_spectral, quadrature

__all__ = [
    "METHODS",
    "Problem",
    "UncertaintySpecError",
    "analyze",
    "problem_from_config",
    "propagate",
    "sample",
    "trial_outcome",
]

METHODS = ("mc", "pce_collocation", "pce_spectral")
DEFAULT_QUANTILES = (0.025, 0.05, 0.25, 0.5, 0.75, 0.95, 0.975)
CITATIONS = {
    "mc": "Monte Carlo propagation (JCGM 101:2008, Supplement 1 to the GUM)",
    "pce_collocation": "Blatman & Sudret 2010, doi:10.1016/j.probengmech.2009.10.003; "
    "chaospy doi:10.1016/j.jocs.2015.08.008",
    "pce_spectral": "Xiu & Karniadakis 2002, doi:10.1137/S1064827501387826; "
    "chaospy doi:10.1016/j.jocs.2015.08.008",
}


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown uq method {method!r}; allowed: {', '.join(METHODS)}")


def sample(
    problem: Problem,
    n: int | None,
    *,
    seed: int | None,
    method: str = "mc",
    order: int | None = None,
) -> np.ndarray:
    """Parameter rows for uncertainty propagation.

    Parameters
    ----------
    problem : Problem
    n : int or None
        Rows (``mc``, ``pce_collocation``); ignored (pass ``None``) for ``pce_spectral``.
    seed : int or None
    method : {"mc", "pce_collocation", "pce_spectral"}
    order : int, optional
        Quadrature order of ``pce_spectral`` (required there).

    Returns
    -------
    ndarray, shape (n_rows, d)
        Rows in the parameters' units. For ``mc`` and ``pce_collocation`` the first ``n`` rows
        of a draw of ``2 n`` equal the draw of ``n``.
    """
    _check_method(method)
    if method == "pce_spectral":
        if order is None:
            raise ValueError("uq method 'pce_spectral' needs order=<int>")
        return problem.from_germ(quadrature(problem, order)[0])
    if n is None or n < 1:
        raise ValueError(f"uq method {method!r} needs n >= 1 rows; got {n}")
    if method == "mc":
        return problem.sample(n, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # balance warning for n not a power of 2
        U = qmc.Sobol(problem.d, scramble=True, seed=seed).random(int(n))
    return problem.from_unit(U)


def _interval_probs(level: float) -> tuple[float, float]:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level}")
    return (1 - level) / 2, (1 + level) / 2


def _fit(
    problem: Problem, X: np.ndarray, Y2: np.ndarray, method: str, order: int | None
) -> tuple[PCE, np.ndarray]:
    """PCE of columns ``Y2``; returns the fit and the mask of usable columns."""
    if method == "pce_spectral":
        ok = np.isfinite(Y2).all(axis=0)
        Yf = np.where(ok, Y2, 0.0)
        return fit_spectral(problem, X, Yf, order=order), ok
    # a column (e.g. one patient) that failed for some parameter rows has no surrogate; the
    # other columns keep every row
    ok = np.isfinite(Y2).all(axis=0)
    fit = fit_collocation(problem, X, np.where(ok, Y2, 0.0), order=order)
    return fit, ok


def analyze(
    problem: Problem,
    X: np.ndarray,
    Y: Any,
    *,
    seed: int | None,
    method: str = "mc",
    order: int | None = None,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    level: float = 0.95,
    n_surrogate: int = 20_000,
    dims: Sequence[str] | None = None,
) -> xr.Dataset:
    """Moments, quantiles and prediction intervals of every output element.

    Parameters
    ----------
    problem : Problem
    X : ndarray, shape (n_rows, d)
        Rows from :func:`sample` (same ``method``/``order``).
    Y : ndarray or mapping name -> ndarray/DataArray
        Outputs, first axis = row. Per-patient outputs have shape (n_rows, n_patients) with
        ``dims=("patient",)``: rows are parameter samples shared by all patients.
    seed : int or None
        Seed of the surrogate draws (PCE methods).
    method : {"mc", "pce_collocation", "pce_spectral"}
    order : int, optional
        PCE order (required for ``pce_spectral``; chosen by LOO for collocation if omitted).
    quantiles : sequence of float
        Probabilities of the reported quantiles.
    level : float
        Coverage of the central prediction interval ``pi_lower … pi_upper``.
    n_surrogate : int
        Surrogate draws used for PCE quantiles.
    dims : sequence of str, optional
        Names of the extra output axes of numpy outputs (e.g. ``("patient",)``).

    Returns
    -------
    xarray.Dataset
        Dims ``(output, *extra)``: ``mean``, ``std``, ``pi_lower``, ``pi_upper``,
        ``n_nonfinite``; ``quantiles`` with dims ``(output, quantile, *extra)``; ``mean_se``
        (Monte Carlo standard error, ``mc``) or ``loo_error`` (PCE). Outputs in the same
        units as ``Y``. Failed (non-finite) rows are excluded: per element for ``mc``, per row of
        an output for ``pce_collocation``; ``pce_spectral`` gives NaN for such elements.
    """
    return _summarise(problem, X, Y, seed, method, order, quantiles, level, n_surrogate, dims)


def _summarise(
    problem: Problem,
    X: np.ndarray,
    Y: Any,
    seed: int | None,
    method: str,
    order: int | None,
    quantiles: Sequence[float],
    level: float,
    n_surrogate: int,
    dims: Sequence[str] | None,
    fits: dict[str, tuple[PCE, np.ndarray, tuple[int, ...]]] | None = None,
) -> xr.Dataset:
    """Body of :func:`analyze`; fills ``fits`` (output -> PCE, usable columns, extra shape)."""
    _check_method(method)
    X = np.asarray(X, dtype=float)
    outputs = as_outputs(Y, len(X), dims)
    lo, hi = (round(v, 12) for v in _interval_probs(level))
    probs = np.unique(np.round(np.concatenate([np.asarray(quantiles, dtype=float), [lo, hi]]), 12))
    rng = np.random.default_rng(seed)
    xi_draws = None
    per_output = []
    orders = []
    for name, da in outputs.items():
        extra = da.dims[1:]
        shape = tuple(da.sizes[e] for e in extra)
        Y2 = da.values.reshape(len(X), -1)
        n_bad = (~np.isfinite(Y2)).sum(axis=0)
        res: dict[str, np.ndarray] = {}
        if method == "mc":
            with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN
                n_ok = np.isfinite(Y2).sum(axis=0)
                res["mean"] = np.nanmean(Y2, axis=0)
                res["std"] = np.nanstd(Y2, axis=0, ddof=1)
                res["mean_se"] = res["std"] / np.sqrt(n_ok)
                q = np.nanquantile(Y2, probs, axis=0)
        else:
            fit, ok = _fit(problem, X, Y2, method, order)
            orders.append(fit.order)
            if fits is not None:
                fits[name] = (fit, ok, da.shape[1:])
            if xi_draws is None:
                xi_draws = _germ_draws(problem, n_surrogate, rng)
            res["mean"] = np.where(ok, fit.mean, np.nan)
            res["std"] = np.where(ok, np.sqrt(fit.variance), np.nan)
            res["loo_error"] = np.where(ok, fit.loo_error, np.nan)
            q = _surrogate_quantiles(fit, xi_draws, probs)
            q[:, ~ok] = np.nan
        res["pi_lower"] = q[np.searchsorted(probs, lo)]
        res["pi_upper"] = q[np.searchsorted(probs, hi)]
        data = {k: xr.DataArray(v.reshape(shape), dims=extra) for k, v in res.items()}
        data["quantiles"] = xr.DataArray(
            q.reshape(len(probs), *shape), dims=("quantile", *extra), coords={"quantile": probs}
        )
        data["n_nonfinite"] = xr.DataArray(n_bad.reshape(shape), dims=extra)
        ds = xr.Dataset(data)
        for e in extra:
            if e in da.coords:
                ds = ds.assign_coords({e: da.coords[e].values})
        per_output.append(ds.expand_dims(output=[name]))
    ds = xr.concat(
        per_output, dim="output", join="outer", data_vars="all", coords="minimal", compat="override"
    )
    ds["quantiles"] = ds["quantiles"].transpose("output", "quantile", ...)
    long = {
        "mean": "mean",
        "std": "standard deviation",
        "mean_se": "Monte Carlo standard error of the mean",
        "loo_error": "relative leave-one-out error of the PCE (mean e_loo^2 / var y)",
        "pi_lower": f"lower end of the central {level:.0%} prediction interval",
        "pi_upper": f"upper end of the central {level:.0%} prediction interval",
        "quantiles": "quantiles of the output distribution",
        "n_nonfinite": "rows with non-finite output",
    }
    for k in ds.data_vars:
        ds[k].attrs = {
            "long_name": long[k],
            "units": "1" if k in ("loo_error", "n_nonfinite") else "output units",
        }
    ds.attrs = {
        "method": method,
        "citation": CITATIONS[method],
        "n_evaluations": len(X),
        "level": level,
        "seed": -1 if seed is None else int(seed),
        **problem.describe(),
    }
    if orders:
        ds.attrs["order"] = orders
        ds.attrs["n_surrogate"] = n_surrogate
    return ds


def _germ_draws(problem: Problem, n: int, rng: np.random.Generator) -> np.ndarray:
    """I.i.d. draws of the independent germ."""
    return problem._ppf(rng.random((int(n), problem.d)))


def _surrogate_quantiles(
    fit: PCE, xi: np.ndarray, probs: np.ndarray, block: int = 256
) -> np.ndarray:
    """Quantiles of the surrogate at germ draws ``xi``, computed in column blocks."""
    B = fit.basis(xi)
    m = fit.coefficients.shape[1]
    out = np.empty((len(probs), m))
    for s in range(0, m, block):
        out[:, s : s + block] = np.quantile(B @ fit.coefficients[:, s : s + block], probs, axis=0)
    return out


def trial_outcome(
    events: Any,
    *,
    weights: np.ndarray | None = None,
    level: float = 0.95,
    n_boot: int = 500,
    seed: int | None,
    dims: Sequence[str] | None = None,
) -> xr.Dataset:
    """Population-level interval of the proportion of patients with an event.

    For parameter sample ``s`` the (weighted) proportion is
    ``p_s = sum_j w_j e_sj / sum_j w_j`` over patients ``j`` with a finite event. Sampling
    uncertainty (which patients were enrolled) is a nonparametric bootstrap over patients,
    ``p_sb`` with the same resampled patients for every ``s`` (Efron & Tibshirani 1993,
    *An Introduction to the Bootstrap*, Chapman & Hall); weights enter as in a Hajek estimator.
    The combined interval is the central ``level`` interval of all ``p_sb`` pooled, i.e. of the
    mixture over parameter uncertainty of the sampling distribution.

    Parameters
    ----------
    events : ndarray or mapping name -> ndarray/DataArray
        0/1 (or bool; NaN = patient failed, excluded) of shape (n_samples, n_patients, *extra)
        (extra dims such as ``arm``, named by ``dims``).
    weights : ndarray, shape (n_patients,), optional
        Patient sampling weights (e.g. the cohort's ``sampling_weight``); default 1.
    level : float
        Coverage of the intervals.
    n_boot : int
        Bootstrap resamples of patients.
    seed : int or None
    dims : sequence of str, optional
        Names of the axes after ``patient``.

    Returns
    -------
    xarray.Dataset
        Dims ``(output, *extra)``: ``proportion`` (mean over samples of ``p_s``),
        ``lower``/``upper`` (combined), ``parameter_lower``/``parameter_upper`` (quantiles of
        ``p_s``: parameter uncertainty only), ``sampling_lower``/``sampling_upper`` (bootstrap
        of the proportion of the sample-averaged events: sampling only); ``proportion_samples``
        dims ``(output, sample, *extra)``.
    """
    if not isinstance(events, Mapping):
        events = {"event": events}
    rng = np.random.default_rng(seed)
    lo, hi = _interval_probs(level)
    C = None
    per_output = []
    for name, ev in events.items():
        if isinstance(ev, xr.DataArray):
            extra = ev.dims[2:]
            coords = {e: ev.coords[e].values for e in extra if e in ev.coords}
            arr = ev.values.astype(float)
        else:
            arr = np.asarray(ev, dtype=float)
            extra = tuple(
                (list(dims or []) + [f"dim_{k + 2}" for k in range(arr.ndim)])[: arr.ndim - 2]
            )
            coords = {}
        if arr.ndim < 2:
            raise ValueError(
                f"trial_outcome: events '{name}' must have shape (n_samples, n_patients, ...); "
                f"got {arr.shape}"
            )
        S, P = arr.shape[:2]
        shape = arr.shape[2:]
        e = arr.reshape(S, P, -1)
        valid = np.isfinite(e)
        w = np.ones(P) if weights is None else np.asarray(weights, dtype=float)
        if w.shape != (P,) or np.any(w < 0):
            raise ValueError(f"trial_outcome: weights must be (n_patients,) = ({P},), >= 0")
        if C is None or C.shape[1] != P:
            C = rng.multinomial(P, np.full(P, 1.0 / P), size=n_boot).astype(float)  # (B, P)
        ew = np.where(valid, e, 0.0) * w[None, :, None]
        vw = valid * w[None, :, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            p_s = ew.sum(axis=1) / vw.sum(axis=1)  # (S, M)
            # (M, S, P) @ (P, B): BLAS matrix products, then (S, B, M)
            num = ew.transpose(2, 0, 1) @ C.T
            den = vw.transpose(2, 0, 1) @ C.T
            p_sb = (num / den).transpose(1, 2, 0)
            e_bar = np.nanmean(np.where(valid, e, np.nan), axis=0)  # (P, M)
            ok = np.isfinite(e_bar)
            p_b = (np.where(ok, e_bar, 0.0) * w[:, None]).T @ C.T / ((ok * w[:, None]).T @ C.T)
        pooled = p_sb.reshape(S * n_boot, -1)
        res = {
            "proportion": np.nanmean(p_s, axis=0),
            "lower": np.nanquantile(pooled, lo, axis=0),
            "upper": np.nanquantile(pooled, hi, axis=0),
            "parameter_lower": np.nanquantile(p_s, lo, axis=0),
            "parameter_upper": np.nanquantile(p_s, hi, axis=0),
            "sampling_lower": np.nanquantile(p_b, lo, axis=1),
            "sampling_upper": np.nanquantile(p_b, hi, axis=1),
        }
        data = {k: xr.DataArray(v.reshape(shape), dims=extra) for k, v in res.items()}
        data["proportion_samples"] = xr.DataArray(p_s.reshape(S, *shape), dims=("sample", *extra))
        per_output.append(xr.Dataset(data, coords=coords).expand_dims(output=[name]))
    ds = xr.concat(
        per_output, dim="output", join="outer", data_vars="all", coords="minimal", compat="override"
    )
    pct = f"{level:.0%}"
    long = {
        "proportion": "proportion of patients with the event (mean over parameter samples)",
        "lower": f"lower end of the {pct} interval (parameter and sampling uncertainty)",
        "upper": f"upper end of the {pct} interval (parameter and sampling uncertainty)",
        "parameter_lower": f"lower end of the {pct} interval (parameter uncertainty only)",
        "parameter_upper": f"upper end of the {pct} interval (parameter uncertainty only)",
        "sampling_lower": f"lower end of the {pct} interval (patient sampling only)",
        "sampling_upper": f"upper end of the {pct} interval (patient sampling only)",
        "proportion_samples": "proportion of patients with the event, per parameter sample",
    }
    for k in ds.data_vars:
        ds[k].attrs = {"long_name": long[k], "units": "1"}
    ds.attrs = {
        "method": "parameter samples x patient bootstrap (pooled)",
        "level": level,
        "n_boot": n_boot,
        "weighted": int(weights is not None),
        "seed": -1 if seed is None else int(seed),
    }
    return ds


EventSpec = str | Callable[[Mapping[str, np.ndarray]], np.ndarray]


def propagate(
    problem: Problem,
    evaluate: Callable[[np.ndarray], Mapping[str, Any]],
    *,
    method: str = "mc",
    n: int | None = None,
    order: int | None = None,
    seed: int | None,
    dims: Sequence[str] | None = None,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    level: float = 0.95,
    n_surrogate: int = 20_000,
    events: Mapping[str, EventSpec] | None = None,
    weights: np.ndarray | None = None,
    n_outcome_samples: int = 2_000,
    n_boot: int = 500,
) -> xr.Dataset:
    """Sample the parameters, evaluate the model once for all rows, summarise.

    Parameters
    ----------
    problem : Problem
    evaluate : callable
        ``evaluate(X) -> {output: array (n_rows, ...)}``; per-patient outputs
        ``(n_rows, n_patients)`` evaluate every parameter row for every patient.
    method, n, order, seed, dims, quantiles, level, n_surrogate
        See :func:`sample` and :func:`analyze`.
    events : mapping name -> (output name or callable), optional
        Binary trial events per parameter sample and patient: an output that is already 0/1,
        or ``f(outputs) -> array (n_samples, n_patients, ...)`` of 0/1 (e.g.
        ``lambda y: y["stress_mpa"] > 250.0``). With PCE methods the callable is applied to
        surrogate predictions at ``n_outcome_samples`` germ draws, so it must use continuous
        outputs.
    weights : ndarray, shape (n_patients,), optional
        Patient sampling weights for the event proportions.
    n_outcome_samples, n_boot
        Surrogate draws (PCE) and patient bootstrap resamples for :func:`trial_outcome`.

    Returns
    -------
    xarray.Dataset
        :func:`analyze` result; with ``events`` also the :func:`trial_outcome` variables
        prefixed ``outcome_`` (dim ``outcome`` instead of ``output``).
    """
    X = sample(problem, n, seed=seed, method=method, order=order)
    Y = dict(evaluate(X))
    fits: dict[str, tuple[PCE, np.ndarray, tuple[int, ...]]] = {}
    ds = _summarise(problem, X, Y, seed, method, order, quantiles, level, n_surrogate, dims, fits)
    if not events:
        return ds
    if method == "mc":
        Ys = Y
    else:
        rng = np.random.default_rng(None if seed is None else int(seed) + 7)
        xi = _germ_draws(problem, n_outcome_samples, rng)
        Ys = {}
        for name, (fit, ok, extra_shape) in fits.items():
            pred = fit(xi)
            pred[:, ~ok] = np.nan
            Ys[name] = pred.reshape(len(xi), *extra_shape)
    ev = {}
    for name, spec in events.items():
        if isinstance(spec, str):
            if spec not in Ys:
                raise KeyError(f"event '{name}': output {spec!r} not among {sorted(Ys)}")
            ev[name] = np.asarray(Ys[spec], dtype=float)
        else:
            raw = np.asarray(spec(Ys), dtype=float)
            # a failed simulation (non-finite output of the same shape) is no event, but missing
            for y in Ys.values():
                y = np.asarray(y, dtype=float)
                if y.shape == raw.shape:
                    raw = np.where(np.isfinite(y), raw, np.nan)
            ev[name] = raw
    rest = list(dims or [])[1:]
    tr = trial_outcome(ev, weights=weights, level=level, n_boot=n_boot, seed=seed, dims=rest)
    tr = tr.rename({"output": "outcome", **{k: f"outcome_{k}" for k in tr.data_vars}})
    out = xr.merge([ds, tr], compat="override", join="outer", combine_attrs="override")
    out.attrs["outcome_level"] = level
    out.attrs["outcome_n_boot"] = n_boot
    return out
