"""Random balance design FAST (RBD-FAST, SALib): first-order indices.

``sample`` draws ``n`` Latin-hypercube rows; ``analyze`` returns ``S1`` and ``S1_conf``
(bootstrap half-width), bias-corrected as in Tissot & Prieur (2012). RBD-FAST only needs the
ranks of each parameter, so any independent sample of the problem can be analysed. Requires
independent parameters.

References
----------
Tarantola, S., Gatelli, D. & Mara, T. A. (2006). Random balance designs for the estimation of
first order global sensitivity indices. Reliab. Eng. Syst. Saf. 91(6), 717-727.
doi:10.1016/j.ress.2005.06.003
Tissot, J.-Y. & Prieur, C. (2012). Bias correction for the estimation of sensitivity indices
based on random balance designs. Reliab. Eng. Syst. Saf. 107, 205-213.
doi:10.1016/j.ress.2012.06.010
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr
from SALib.analyze import rbd_fast as _salib_analyze
from SALib.sample import latin as _salib_sample

from credibility._problem import Problem
from credibility.sensitivity._common import apply_columns, as_outputs, check_rows

__all__ = ["analyze", "sample"]

CITATION = "Tarantola et al. 2006, doi:10.1016/j.ress.2005.06.003; Tissot & Prieur 2012, doi:10.1016/j.ress.2012.06.010"


def sample(problem: Problem, n: int, *, seed: int | None) -> np.ndarray:
    """``n`` Latin-hypercube parameter rows."""
    problem.require_independent("rbd")
    return problem.from_unit(_salib_sample.sample(problem.to_salib(), int(n), seed=seed))


def analyze(
    problem: Problem,
    X: np.ndarray,
    Y: Any,
    *,
    seed: int | None,
    M: int = 10,
    num_resamples: int = 200,
    conf_level: float = 0.95,
    dims: Sequence[str] | None = None,
) -> xr.Dataset:
    """RBD-FAST first-order indices; arguments as :func:`credibility.sensitivity.sobol.analyze`.

    Returns
    -------
    xarray.Dataset
        ``S1, S1_conf`` dims ``(output, parameter, *extra)``.
    """
    X = check_rows(X, problem.d, "rbd")
    U = problem.to_unit(X)
    sp = problem.to_salib()
    outputs = as_outputs(Y, len(X), dims)

    def column(y: np.ndarray) -> dict[str, np.ndarray]:
        r = _salib_analyze.analyze(
            sp, U, y, M=M, num_resamples=num_resamples, conf_level=conf_level, seed=seed
        )
        return {k: np.asarray(r[k], dtype=float) for k in var_dims}

    var_dims = {"S1": ("parameter",), "S1_conf": ("parameter",)}
    ds = apply_columns(outputs, column, var_dims, {"parameter": list(problem.names)})
    ds["S1"].attrs = {"long_name": "RBD-FAST first-order index", "units": "1"}
    ds["S1_conf"].attrs = {
        "long_name": "RBD-FAST first-order index (half-width of CI)",
        "units": "1",
    }
    ds.attrs = {
        "method": "rbd",
        "citation": CITATION,
        "n_evaluations": len(X),
        "M": M,
        "conf_level": conf_level,
        "seed": -1 if seed is None else int(seed),
        **problem.describe(),
    }
    return ds
