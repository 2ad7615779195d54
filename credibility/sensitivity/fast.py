"""Extended Fourier Amplitude Sensitivity Test (eFAST, SALib): first and total order.

``sample`` returns ``n d`` rows (``n`` points on each of the ``d`` search curves, ``n > 4 M^2``);
``analyze`` returns ``S1``, ``S1_conf``, ``ST``, ``ST_conf`` (bootstrap half-widths; SALib warns
that bootstrap CIs of eFAST are unreliable, SALib issue #649, so treat them as indicative).
Requires independent parameters.

References
----------
Saltelli, A., Tarantola, S. & Chan, K. P.-S. (1999). A quantitative model-independent method
for global sensitivity analysis of model output. Technometrics 41(1), 39-56.
doi:10.1080/00401706.1999.10485594
Cukier, R. I., Fortuin, C. M., Shuler, K. E., Petschek, A. G. & Schaibly, J. H. (1973).
J. Chem. Phys. 59(8), 3873-3878. doi:10.1063/1.1680571
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr
from SALib.analyze import fast as _salib_analyze
from SALib.sample import fast_sampler as _salib_sample

from credibility._problem import Problem
from credibility.sensitivity._common import apply_columns, as_outputs, check_rows, rng_seed

__all__ = ["analyze", "sample"]

CITATION = "Saltelli, Tarantola & Chan 1999, doi:10.1080/00401706.1999.10485594"


def sample(problem: Problem, n: int, *, seed: int | None, M: int = 4) -> np.ndarray:
    """eFAST design: ``n`` points per search curve, ``n d`` parameter rows (``n > 4 M^2``)."""
    problem.require_independent("fast")
    if n <= 4 * M**2:
        raise ValueError(f"fast: n must exceed 4 M^2 = {4 * M**2}; got {n}")
    return problem.from_unit(_salib_sample.sample(problem.to_salib(), int(n), M=M, seed=seed))


def analyze(
    problem: Problem,
    X: np.ndarray,
    Y: Any,
    *,
    seed: int | None,
    M: int = 4,
    num_resamples: int = 200,
    conf_level: float = 0.95,
    dims: Sequence[str] | None = None,
) -> xr.Dataset:
    """eFAST indices; arguments as :func:`credibility.sensitivity.sobol.analyze`.

    Returns
    -------
    xarray.Dataset
        ``S1, S1_conf, ST, ST_conf`` dims ``(output, parameter, *extra)``.
    """
    X = check_rows(X, problem.d, "fast")
    if len(X) % problem.d:
        raise ValueError(f"fast: {len(X)} rows is not a multiple of d = {problem.d}")
    sp = problem.to_salib()
    outputs = as_outputs(Y, len(X), dims)

    def column(y: np.ndarray) -> dict[str, np.ndarray]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # noted in attrs["conf_note"]
            r = _salib_analyze.analyze(
                sp, y, M=M, num_resamples=num_resamples, conf_level=conf_level, seed=rng_seed(seed)
            )
        return {k: np.asarray(r[k], dtype=float) for k in var_dims}

    var_dims = {k: ("parameter",) for k in ("S1", "S1_conf", "ST", "ST_conf")}
    ds = apply_columns(outputs, column, var_dims, {"parameter": list(problem.names)})
    for k in var_dims:
        kind = "first-order" if k.startswith("S1") else "total"
        half = " (half-width of CI)" if k.endswith("_conf") else ""
        ds[k].attrs = {"long_name": f"eFAST {kind} index{half}", "units": "1"}
    ds.attrs = {
        "method": "fast",
        "citation": CITATION,
        "n_evaluations": len(X),
        "M": M,
        "conf_level": conf_level,
        "conf_note": "bootstrap CIs of eFAST are indicative only (SALib issue #649)",
        "seed": -1 if seed is None else int(seed),
        **problem.describe(),
    }
    return ds
