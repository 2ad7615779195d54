"""Sobol indices from a polynomial chaos expansion (point collocation, chaospy basis).

``sample`` draws ``n`` rows of a scrambled Sobol' sequence mapped to the marginals (the first
``n`` rows of a design of ``2 n`` equal the design of ``n``). ``analyze`` fits an orthonormal
PCE by least squares (order chosen by leave-one-out error unless given) and reads first,
total and second-order indices off the coefficients (Sudret 2008). ``*_conf`` are bootstrap
half-widths from refitting the PCE of the same order on resampled rows; ``loo_error`` is the
relative leave-one-out error of the surrogate. Requires independent parameters.

References
----------
Sudret, B. (2008). Global sensitivity analysis using polynomial chaos expansions. Reliab. Eng.
Syst. Saf. 93(7), 964-979. doi:10.1016/j.ress.2007.04.002
Blatman, G. & Sudret, B. (2010). Probab. Eng. Mech. 25(2), 183-197.
doi:10.1016/j.probengmech.2009.10.003
Feinberg, J. & Langtangen, H. P. (2015). Chaospy: an open source tool for designing methods of
uncertainty quantification. J. Comput. Sci. 11, 46-57. doi:10.1016/j.jocs.2015.08.008
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import xarray as xr
from scipy.stats import qmc

from credibility._problem import Problem
from credibility.sensitivity._common import apply_columns, as_outputs, check_rows, z_value
from credibility.uq._pce import (
    design_matrix,
    fit_collocation,
    least_squares,
    sobol_from_coefficients,
)

__all__ = ["analyze", "sample"]

CITATION = "Sudret 2008, doi:10.1016/j.ress.2007.04.002; chaospy doi:10.1016/j.jocs.2015.08.008"


def sample(problem: Problem, n: int, *, seed: int | None) -> np.ndarray:
    """``n`` collocation rows (scrambled Sobol' sequence through the marginals)."""
    problem.require_independent("pce")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # balance warning for n not a power of 2
        U = qmc.Sobol(problem.d, scramble=True, seed=seed).random(int(n))
    return problem.from_unit(U)


def analyze(
    problem: Problem,
    X: np.ndarray,
    Y: Any,
    *,
    seed: int | None,
    order: int | None = None,
    max_order: int = 12,
    num_resamples: int = 100,
    conf_level: float = 0.95,
    dims: Sequence[str] | None = None,
) -> xr.Dataset:
    """PCE-based Sobol indices of each output (all columns share one design matrix).

    Parameters
    ----------
    problem : Problem
        Independent parameters.
    X : ndarray, shape (n, d)
        Collocation rows (any design; :func:`sample` gives a good one).
    Y, seed, num_resamples, conf_level, dims
        As :func:`credibility.sensitivity.sobol.analyze`.
    order : int or None
        Total order of the expansion; ``None`` picks the order ``<= max_order`` with the
        smallest leave-one-out error among those with ``n >= 1.5 P`` terms.

    Returns
    -------
    xarray.Dataset
        ``S1, S1_conf, ST, ST_conf`` dims ``(output, parameter, *extra)``; ``S2, S2_conf`` dims
        ``(output, parameter, parameter_j, *extra)``; ``loo_error`` dims ``(output, *extra)``.
        ``attrs["order"]`` is the order used for each output (as a list in output order).
    """
    problem.require_independent("pce")
    X = check_rows(X, problem.d, "pce")
    outputs = as_outputs(Y, len(X), dims)
    z = z_value(conf_level)
    orders: list[int] = []

    def columns(Y2: np.ndarray) -> dict[str, np.ndarray]:
        fit = fit_collocation(problem, X, Y2, order=order, max_order=max_order)
        orders.append(fit.order)
        est = sobol_from_coefficients(fit)
        Phi, _ = design_matrix(problem, problem.to_germ(X), fit.order, (fit.alpha, fit.beta))
        rng = np.random.default_rng(seed)
        boot: dict[str, list[np.ndarray]] = {k: [] for k in est}
        for _ in range(num_resamples):
            idx = rng.integers(0, len(X), len(X))
            if len(np.unique(idx)) < fit.indices.shape[0]:
                continue  # too few distinct rows to refit this order
            coef, _ = least_squares(Phi[idx], Y2[idx])
            b = sobol_from_coefficients(replace(fit, coefficients=coef))
            for k in est:
                boot[k].append(b[k])
        out = dict(est)
        for k in est:
            arr = np.array(boot[k]) if boot[k] else np.full((1, *est[k].shape), np.nan)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                out[f"{k}_conf"] = z * np.nanstd(arr, axis=0, ddof=1)
        out["loo_error"] = fit.loo_error
        return out

    var_dims: dict[str, tuple[str, ...]] = {
        k: ("parameter",) for k in ("S1", "S1_conf", "ST", "ST_conf")
    }
    var_dims |= {k: ("parameter", "parameter_j") for k in ("S2", "S2_conf")}
    var_dims |= {"loo_error": ()}
    names = list(problem.names)
    ds = apply_columns(
        outputs, columns, var_dims, {"parameter": names, "parameter_j": names}, vectorised=True
    )
    for k in ("S1", "S1_conf", "ST", "ST_conf", "S2", "S2_conf"):
        kind = {"S1": "first-order", "ST": "total", "S2": "second-order"}[k[:2]]
        half = " (half-width of CI)" if k.endswith("_conf") else ""
        ds[k].attrs = {"long_name": f"PCE {kind} Sobol index{half}", "units": "1"}
    ds["loo_error"].attrs = {
        "long_name": "relative leave-one-out error of the PCE (mean e_loo^2 / var y)",
        "units": "1",
    }
    ds.attrs = {
        "method": "pce",
        "citation": CITATION,
        "order": orders,
        "n_evaluations": len(X),
        "conf_level": conf_level,
        "num_resamples": num_resamples,
        "seed": -1 if seed is None else int(seed),
        **problem.describe(),
    }
    return ds
