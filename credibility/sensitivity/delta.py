"""Borgonovo's moment-independent delta and given-data first-order indices (SALib).

Given-data method: ``analyze`` takes any sample ``X`` of the inputs, including dependent ones
such as a cohort as simulated, so ``problem`` may be a :class:`~credibility._problem.Problem`
or just the sequence of input names (the columns of ``X``; a pandas DataFrame is selected by
name). ``sample(problem, n, *, seed)`` exists for the uniform API and simply draws ``n``
i.i.d. rows of the joint distribution (with its copula); with a cohort, skip it.
Rows with a non-finite output are dropped per output column.

``delta`` is SALib's bias-reduced estimator on the data as given ("raw" bootstrap; its
densities computed by :mod:`._delta_kernel`, 5-6x faster, equal to 1e-12), so with
dependent inputs it measures each input's influence *including* that carried by correlated
inputs. ``S1`` is the given-data first-order Sobol index (correlation ratio, Plischke et al.
2013). ``*_conf`` are bootstrap half-widths.

References
----------
Borgonovo, E. (2007). A new uncertainty importance measure. Reliab. Eng. Syst. Saf. 92(6),
771-784. doi:10.1016/j.ress.2006.04.015
Plischke, E., Borgonovo, E. & Smith, C. L. (2013). Global sensitivity measures from given
data. Eur. J. Oper. Res. 226(3), 536-550. doi:10.1016/j.ejor.2012.11.047
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from credibility._problem import Problem
from credibility.sensitivity._common import apply_columns, as_outputs, names_of, z_value
from credibility.sensitivity._given import given_data_sample, given_inputs

__all__ = ["analyze", "salib_delta_column", "sample"]

CITATION = "Borgonovo 2007, doi:10.1016/j.ress.2006.04.015; Plischke et al. 2013, doi:10.1016/j.ejor.2012.11.047"


def _bootstrap_rows(n: int, resamples: int, rng: np.random.RandomState) -> np.ndarray:
    """SALib's "raw" resamples of ``bias_reduced_delta``, drawn as it draws them: the sample
    the estimate is made on, then one row per resample (from numpy's legacy generator,
    which SALib uses as the global RNG)."""
    return np.stack([rng.randint(n, size=n) for _ in range(resamples + 1)])


def _partition(n: int, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SALib's class edges of the input ranks and its grid of the output (Plischke et al.
    2013's partition size)."""
    exponent = 2.0 / (7.0 + np.tanh((1500.0 - n) / 500.0))
    n_bins = int(np.round(min(int(np.ceil(n**exponent)), 48)))
    return np.linspace(0, n, n_bins + 1), np.linspace(np.min(y), np.max(y), 100)


def salib_delta_column(
    X: np.ndarray, y: np.ndarray, num_resamples: int, conf_level: float
) -> np.ndarray:
    """Reference: ``delta, delta_conf, S1, S1_conf`` (rows) of each input (columns) by SALib's
    own estimator functions, drawing from numpy's global RNG in the order :func:`analyze`
    does. For known-answer checks and benchmarks of the compiled kernels; 5-6x slower."""
    from SALib.analyze import delta as salib

    n, d = X.shape
    m, grid = _partition(n, y)
    out = np.full((4, d), np.nan)
    for i in range(d):
        if np.ptp(X[:, i]) == 0:
            continue
        out[0, i], out[1, i], _ = salib.bias_reduced_delta(
            y, grid, X[:, i], m, num_resamples, conf_level, n, "raw", None, str(i), 10
        )
        out[2, i] = salib.sobol_first(y, X[:, i], m)
        out[3, i] = salib.sobol_first_conf(y, X[:, i], m, num_resamples, conf_level, n)
    return out


def _delta_column(
    X: np.ndarray,
    y: np.ndarray,
    names: Sequence[str],
    num_resamples: int,
    conf_level: float,
    rng: np.random.RandomState,
) -> dict[str, np.ndarray]:
    """Bias-reduced delta on the data as given and the given-data first-order index.

    SALib's estimator (``bias_reduced_delta``, ``sobol_first``, ``sobol_first_conf``) with its
    partition size and its resamples, drawn in its order from the same kind of generator
    (``rng``: a ``RandomState`` seeded as SALib seeds the global one gives its resamples); the
    densities are evaluated by the compiled kernels of :mod:`._delta_kernel` (Plischke et al.
    2013).
    """
    # compiled on first use (numba), not when credibility is imported
    from credibility.sensitivity._delta_kernel import delta_hats, sobol_firsts

    n, d = X.shape
    res = {k: np.full(d, np.nan) for k in ("delta", "delta_conf", "S1", "S1_conf")}
    if n < 20 or np.ptp(y) == 0:
        return res
    m, grid = _partition(n, y)
    z = z_value(conf_level)
    for i in range(d):
        x = np.ascontiguousarray(X[:, i])
        if np.ptp(x) == 0:
            continue
        rows = _bootstrap_rows(n, num_resamples, rng)
        hats = delta_hats(y, x, grid, m, rows)
        biased = 2.0 * hats[0] - hats[1:]  # Plischke et al. 2013, eqn 30
        res["delta"][i], res["delta_conf"][i] = biased.mean(), z * biased.std(ddof=1)
        res["S1"][i] = sobol_firsts(y, x, m, np.arange(n)[None, :])[0]
        rows = rng.choice(n, size=(num_resamples, n), replace=True)
        res["S1_conf"][i] = z * sobol_firsts(y, x, m, rows).std(ddof=1)
    return res


def sample(problem: Problem, n: int, *, seed: int | None) -> np.ndarray:
    """``n`` i.i.d. rows of the joint distribution (given-data methods accept any sample)."""
    return given_data_sample(problem, n, seed, "delta")


def analyze(
    problem: Problem | Sequence[str],
    X: Any,
    Y: Any,
    *,
    seed: int | None,
    num_resamples: int = 100,
    conf_level: float = 0.95,
    dims: Sequence[str] | None = None,
) -> xr.Dataset:
    """Delta and given-data first-order indices of each output.

    Parameters
    ----------
    problem : Problem or sequence of str
        Input names (and, if a Problem, its description for attrs).
    X : ndarray (n, d) or pandas.DataFrame
        The inputs as sampled (dependent inputs allowed).
    Y, seed, num_resamples, conf_level, dims
        As :func:`credibility.sensitivity.sobol.analyze`.

    Returns
    -------
    xarray.Dataset
        ``delta, delta_conf, S1, S1_conf`` dims ``(output, parameter, *extra)``.
    """
    X = given_inputs(problem, X, "delta")
    names = names_of(problem)
    outputs = as_outputs(Y, len(X), dims)

    def column(y: np.ndarray) -> dict[str, np.ndarray]:
        ok = np.isfinite(y)
        return _delta_column(X[ok], y[ok], names, num_resamples, conf_level, rng)

    # SALib's delta helpers draw from numpy's legacy global RNG, seeded so: the same stream
    # from a generator of this call's own (numpy's global state is neither read nor changed,
    # so analyses running in other threads at the same time draw what they would alone)
    rng = np.random.RandomState(None if seed is None else int(seed) % 2**32)  # noqa: NPY002
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        var_dims = {k: ("parameter",) for k in ("delta", "delta_conf", "S1", "S1_conf")}
        ds = apply_columns(
            outputs, column, var_dims, {"parameter": list(names)}, drop_nonfinite=True
        )
    ds["delta"].attrs = {"long_name": "Borgonovo delta moment-independent index", "units": "1"}
    ds["delta_conf"].attrs = {"long_name": "delta index (half-width of CI)", "units": "1"}
    ds["S1"].attrs = {"long_name": "given-data first-order Sobol index", "units": "1"}
    ds["S1_conf"].attrs = {"long_name": "first-order index (half-width of CI)", "units": "1"}
    ds.attrs = {
        "method": "delta",
        "citation": CITATION,
        "n_evaluations": len(X),
        "conf_level": conf_level,
        "num_resamples": num_resamples,
        "seed": -1 if seed is None else int(seed),
        **(problem.describe() if isinstance(problem, Problem) else {}),
    }
    return ds
