"""Helpers shared by the sensitivity analysers: output handling and Dataset assembly."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr
from scipy import stats

from credibility._problem import Problem

__all__ = ["apply_columns", "as_outputs", "check_rows", "names_of", "rng_seed", "z_value"]

ROW = "row"


def names_of(problem: Problem | Sequence[str]) -> tuple[str, ...]:
    """Parameter names of a :class:`Problem` or of a plain sequence of names (given data)."""
    if isinstance(problem, Problem):
        return problem.names
    return tuple(str(n) for n in problem)


def salib_problem(problem: Problem | Sequence[str]) -> dict[str, Any]:
    names = names_of(problem)
    return {"num_vars": len(names), "names": list(names), "bounds": [[0.0, 1.0]] * len(names)}


def z_value(conf_level: float) -> float:
    """Two-sided normal quantile for ``conf_level``."""
    return float(stats.norm.ppf(0.5 + conf_level / 2.0))


def rng_seed(seed: int | None) -> int | None:
    """SALib analysers seed numpy's legacy global RNG only when ``seed`` is truthy."""
    return None if seed is None else int(seed) + 1


def check_rows(X: np.ndarray, d: int, method: str) -> np.ndarray:
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[1] != d:
        raise ValueError(f"{method}: X must have shape (n_rows, {d}); got {X.shape}")
    return X


def as_outputs(Y: Any, n_rows: int, dims: Sequence[str] | None = None) -> dict[str, xr.DataArray]:
    """Normalise model outputs to ``{name: DataArray(row, *extra)}``.

    ``Y`` may be an array (named ``"y"``), a mapping ``name -> array`` or ``name -> DataArray``.
    The first axis is always the row (model evaluation) axis. Extra axes of numpy arrays are
    named by ``dims`` in order (e.g. ``("patient",)`` or ``("arm", "time")``), defaulting to
    ``dim_1, dim_2, …``; DataArrays keep their own dim names and coordinates.
    """
    if not isinstance(Y, Mapping):
        Y = {"y": Y}
    out: dict[str, xr.DataArray] = {}
    for name, arr in Y.items():
        if isinstance(arr, xr.DataArray):
            da = arr.rename({arr.dims[0]: ROW}).astype(float)
            da = da.drop_vars(ROW, errors="ignore")
        else:
            a = np.asarray(arr, dtype=float)
            if a.ndim == 0:
                raise ValueError(f"output '{name}' must have a row axis; got a scalar")
            extra = a.ndim - 1
            names = list(dims or [])[:extra]
            names += [f"dim_{k + 1}" for k in range(len(names), extra)]
            da = xr.DataArray(a, dims=(ROW, *names))
        if da.sizes[ROW] != n_rows:
            raise ValueError(
                f"output '{name}' has {da.sizes[ROW]} rows but X has {n_rows}; every output "
                "needs one row per model evaluation"
            )
        out[str(name)] = da
    return out


def apply_columns(
    outputs: Mapping[str, xr.DataArray],
    fn: Callable[[np.ndarray], Mapping[str, np.ndarray]],
    var_dims: Mapping[str, tuple[str, ...]],
    coords: Mapping[str, Sequence[Any]],
    *,
    vectorised: bool = False,
    drop_nonfinite: bool = False,
) -> xr.Dataset:
    """Run an analyser on every output column and assemble ``(output, *index dims, *extra)``.

    Outputs are joined on ``output`` with an outer join: an output without one of the extra
    dims of another output is constant along that dim in the result.

    Parameters
    ----------
    fn
        Called with one column ``y`` of shape (n,) (or, if ``vectorised``, all columns as
        (n, m)); returns ``{var: array}`` with shapes given by ``var_dims`` (with a leading ``m``
        axis when vectorised).
    drop_nonfinite
        Given-data methods drop rows with non-finite output; design-based methods
        (``False``) return NaN indices for a column with any non-finite value.
    """
    per_output = []
    for name, da in outputs.items():
        extra = da.dims[1:]
        extra_shape = tuple(da.sizes[e] for e in extra)
        Y2 = da.values.reshape(da.sizes[ROW], -1)
        m = Y2.shape[1]
        finite = np.isfinite(Y2)
        results: dict[str, np.ndarray] = {}
        if vectorised:
            ok = finite.all(axis=0)
            res = fn(Y2[:, ok]) if ok.any() else {}
            for v, vd in var_dims.items():
                shape = tuple(len(coords[x]) for x in vd)
                arr = np.full((m, *shape), np.nan)
                if ok.any():
                    arr[ok] = res[v]
                results[v] = arr
        else:
            for v, vd in var_dims.items():
                results[v] = np.full((m, *(len(coords[x]) for x in vd)), np.nan)
            for k in range(m):
                y = Y2[:, k]
                if drop_nonfinite:
                    res = fn(y)  # the analyser receives the mask through NaNs and drops rows
                elif finite[:, k].all():
                    res = fn(y)
                else:
                    continue
                for v in var_dims:
                    results[v][k] = res[v]
        data_vars = {}
        for v, vd in var_dims.items():
            arr = results[v].reshape((*extra_shape, *results[v].shape[1:]))
            # object dtype: stored as Zarr v3 variable-length strings
            vcoords = {x: np.asarray(list(coords[x]), dtype=object) for x in vd}
            dav = xr.DataArray(arr, dims=(*extra, *vd), coords=vcoords)
            data_vars[v] = dav.transpose(*vd, *extra)
        n_bad = (~finite).sum(axis=0).reshape(extra_shape)
        data_vars["n_nonfinite"] = xr.DataArray(n_bad, dims=extra)
        ds = xr.Dataset(data_vars)
        for e in extra:
            if e in da.coords:
                ds = ds.assign_coords({e: da.coords[e].values})
        per_output.append(ds.expand_dims(output=[name]))
    ds = xr.concat(
        per_output, dim="output", join="outer", data_vars="all", coords="minimal", compat="override"
    )
    for v, vd in var_dims.items():
        ds[v] = ds[v].transpose("output", *vd, ...)
    ds["n_nonfinite"].attrs = {"long_name": "rows with non-finite output", "units": "1"}
    return ds
