"""Sobol' indices by Saltelli sampling (SALib): first, total and second order.

``sample(problem, n, *, seed)`` returns ``n (2 d + 2)`` rows (``n (d + 2)`` without second order)
of a scrambled Sobol' sequence mapped to the parameter marginals; the first rows of a design of
``2 n`` are the design of ``n``, so sample sizes can be doubled re-using evaluated rows.
``analyze`` returns ``S1``, ``S1_conf``, ``ST``, ``ST_conf`` and (second order) ``S2``,
``S2_conf``; ``*_conf`` are half-widths of the ``conf_level`` bootstrap confidence interval
(SALib's convention). Indices are invariant to the monotone marginal transformation, so the
analysis runs on the unit-hypercube design. Requires independent parameters.

References
----------
Sobol', I. M. (2001). Global sensitivity indices for nonlinear mathematical models and their
Monte Carlo estimates. Math. Comput. Simul. 55, 271-280. doi:10.1016/S0378-4754(00)00270-6
Saltelli, A. et al. (2010). Variance based sensitivity analysis of model output. Design and
estimator for the total sensitivity index. Comput. Phys. Commun. 181(2), 259-270.
doi:10.1016/j.cpc.2009.09.018
Herman, J. & Usher, W. (2017). SALib: an open-source Python library for sensitivity analysis.
J. Open Source Softw. 2(9), 97. doi:10.21105/joss.00097
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr
from SALib.analyze import sobol as _salib_analyze
from SALib.sample import sobol as _salib_sample

from credibility._problem import Problem
from credibility.sensitivity._common import apply_columns, as_outputs, check_rows, rng_seed

__all__ = ["analyze", "n_base", "sample"]

CITATION = "Saltelli et al. 2010, doi:10.1016/j.cpc.2009.09.018; SALib doi:10.21105/joss.00097"


def sample(
    problem: Problem, n: int, *, seed: int | None, calc_second_order: bool = True
) -> np.ndarray:
    """Saltelli design of base size ``n`` (a power of 2).

    Parameters
    ----------
    problem : Problem
        Independent parameters.
    n : int
        Base sample size; the design has ``n (2 d + 2)`` rows (``n (d + 2)`` without second
        order).
    seed : int or None
        Seed of the Sobol' scrambling.
    calc_second_order : bool
        Include the rows needed for second-order indices.

    Returns
    -------
    ndarray, shape (n_rows, d)
        Parameter rows in the parameters' units.

    Raises
    ------
    UncertaintySpecError
        If the problem has a correlation.
    """
    problem.require_independent("sobol")
    if n < 2 or n & (n - 1):
        raise ValueError(f"sobol: n must be a power of 2 (Sobol' sequence balance); got {n}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        U = _salib_sample.sample(
            problem.to_salib(), n, calc_second_order=calc_second_order, scramble=True, seed=seed
        )
    return problem.from_unit(U)


def n_base(problem: Problem, n_rows: int, calc_second_order: bool = True) -> int:
    """Base sample size of a Saltelli design with ``n_rows`` rows."""
    per = 2 * problem.d + 2 if calc_second_order else problem.d + 2
    if n_rows % per:
        raise ValueError(f"sobol: {n_rows} rows is not a multiple of {per} (d = {problem.d})")
    return n_rows // per


def analyze(
    problem: Problem,
    X: np.ndarray,
    Y: Any,
    *,
    seed: int | None,
    calc_second_order: bool = True,
    num_resamples: int = 200,
    conf_level: float = 0.95,
    dims: Sequence[str] | None = None,
) -> xr.Dataset:
    """Sobol' indices with bootstrap confidence intervals.

    Parameters
    ----------
    problem : Problem
    X : ndarray, shape (n_rows, d)
        The design from :func:`sample` (used to check the row count).
    Y : ndarray or mapping name -> ndarray/DataArray
        Outputs with first axis = row; extra axes (time, patient, arm …) are analysed
        element-wise and kept as dims (named by ``dims`` for numpy arrays).
    seed : int or None
        Bootstrap seed.
    calc_second_order : bool
        Must match :func:`sample`.
    num_resamples : int
        Bootstrap resamples.
    conf_level : float
        Confidence level of the ``*_conf`` half-widths.

    Returns
    -------
    xarray.Dataset
        ``S1, S1_conf, ST, ST_conf`` dims ``(output, parameter, *extra)``; ``S2, S2_conf`` dims
        ``(output, parameter, parameter_j, *extra)`` (upper triangle).
    """
    X = check_rows(X, problem.d, "sobol")
    n = n_base(problem, len(X), calc_second_order)
    outputs = as_outputs(Y, len(X), dims)
    sp = problem.to_salib()
    names = list(problem.names)

    def column(y: np.ndarray) -> dict[str, np.ndarray]:
        r = _salib_analyze.analyze(
            sp,
            y,
            calc_second_order=calc_second_order,
            num_resamples=num_resamples,
            conf_level=conf_level,
            seed=rng_seed(seed),
        )
        return {k: np.asarray(r[k]) for k in var_dims}

    var_dims = {k: ("parameter",) for k in ("S1", "S1_conf", "ST", "ST_conf")}
    if calc_second_order:
        var_dims |= {k: ("parameter", "parameter_j") for k in ("S2", "S2_conf")}
    with np.errstate(divide="ignore", invalid="ignore"):
        ds = apply_columns(outputs, column, var_dims, {"parameter": names, "parameter_j": names})
    for k in ds.data_vars:
        if k != "n_nonfinite":
            kind = {"S1": "first-order", "ST": "total", "S2": "second-order"}[k.split("_")[0]]
            half = " (half-width of CI)" if k.endswith("_conf") else ""
            ds[k].attrs = {"long_name": f"{kind} Sobol index{half}", "units": "1"}
    ds.attrs = {
        "method": "sobol",
        "citation": CITATION,
        "n_base": n,
        "n_evaluations": len(X),
        "conf_level": conf_level,
        "num_resamples": num_resamples,
        "seed": -1 if seed is None else int(seed),
        **problem.describe(),
    }
    return ds
