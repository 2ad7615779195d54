"""Morris elementary-effects screening (SALib).

Trajectories are built on a ``num_levels`` grid of the unit hypercube, whose levels are mapped to
probabilities ``tail … 1 - tail`` of each marginal (so unbounded marginals stay finite) and then
to parameter values. Elementary effects are output changes per grid step, i.e. per
``1 / (num_levels - 1)`` of the central ``1 - 2 tail`` probability range of the parameter,
in the output's units. ``analyze`` returns ``mu``, ``mu_star``, ``mu_star_conf`` (bootstrap
half-width) and ``sigma``. Requires independent parameters.

References
----------
Morris, M. D. (1991). Factorial sampling plans for preliminary computational experiments.
Technometrics 33(2), 161-174. doi:10.1080/00401706.1991.10484804
Campolongo, F., Cariboni, J. & Saltelli, A. (2007). An effective screening design for
sensitivity analysis of large models. Environ. Model. Softw. 22(10), 1509-1518.
doi:10.1016/j.envsoft.2006.10.004
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr
from SALib.analyze import morris as _salib_analyze
from SALib.sample import morris as _salib_sample

from credibility._problem import Problem
from credibility.sensitivity._common import apply_columns, as_outputs, check_rows

__all__ = ["analyze", "sample"]

CITATION = "Morris 1991, doi:10.1080/00401706.1991.10484804; Campolongo et al. 2007, doi:10.1016/j.envsoft.2006.10.004"


def _to_grid(problem: Problem, X: np.ndarray, tail: float) -> np.ndarray:
    return (problem.to_unit(X) - tail) / (1.0 - 2.0 * tail)


def sample(
    problem: Problem, n: int, *, seed: int | None, num_levels: int = 4, tail: float = 0.005
) -> np.ndarray:
    """``n`` Morris trajectories: ``n (d + 1)`` parameter rows.

    Parameters
    ----------
    problem : Problem
        Independent parameters.
    n : int
        Number of trajectories.
    seed : int or None
    num_levels : int
        Grid levels per parameter (even).
    tail : float
        Probability cut from each tail of every marginal, in (0, 0.5).
    """
    problem.require_independent("morris")
    U = _salib_sample.sample(problem.to_salib(), int(n), num_levels=num_levels, seed=seed)
    return problem.from_unit(tail + (1.0 - 2.0 * tail) * U)


def analyze(
    problem: Problem,
    X: np.ndarray,
    Y: Any,
    *,
    seed: int | None,
    num_levels: int = 4,
    tail: float = 0.005,
    num_resamples: int = 200,
    conf_level: float = 0.95,
    dims: Sequence[str] | None = None,
) -> xr.Dataset:
    """Morris statistics of each output (element-wise over extra dims).

    Parameters
    ----------
    problem, X, Y, seed
        As :func:`credibility.sensitivity.sobol.analyze`; ``X`` from :func:`sample`.
    num_levels, tail
        Must match :func:`sample`.

    Returns
    -------
    xarray.Dataset
        ``mu, mu_star, mu_star_conf, sigma`` dims ``(output, parameter, *extra)``.
    """
    X = check_rows(X, problem.d, "morris")
    if len(X) % (problem.d + 1):
        raise ValueError(f"morris: {len(X)} rows is not a multiple of d + 1 = {problem.d + 1}")
    G = _to_grid(problem, X, tail)
    sp = problem.to_salib()
    outputs = as_outputs(Y, len(X), dims)

    def column(y: np.ndarray) -> dict[str, np.ndarray]:
        r = _salib_analyze.analyze(
            sp,
            G,
            y,
            num_resamples=num_resamples,
            conf_level=conf_level,
            num_levels=num_levels,
            seed=seed,
        )
        return {k: np.asarray(r[k], dtype=float) for k in var_dims}

    var_dims = {k: ("parameter",) for k in ("mu", "mu_star", "mu_star_conf", "sigma")}
    ds = apply_columns(outputs, column, var_dims, {"parameter": list(problem.names)})
    long = {
        "mu": "mean elementary effect",
        "mu_star": "mean absolute elementary effect",
        "mu_star_conf": "mean absolute elementary effect (half-width of CI)",
        "sigma": "standard deviation of elementary effects",
    }
    for k, v in long.items():
        ds[k].attrs = {"long_name": v, "units": "output units per grid step"}
    ds.attrs = {
        "method": "morris",
        "citation": CITATION,
        "n_trajectories": len(X) // (problem.d + 1),
        "n_evaluations": len(X),
        "num_levels": num_levels,
        "tail_probability": tail,
        "conf_level": conf_level,
        "seed": -1 if seed is None else int(seed),
        **problem.describe(),
    }
    return ds
