"""Sampling virtual patients from a population spec, in memory or streamed into zarr.

Patient ``i`` draws from its own counter-based stream (see :mod:`cohorts._random`): key
``SeedSequence(seed, spawn_key=(i,))``, counter ``(draw block, attempt, 0, 0)``. For attempt
``a`` the patient's uniforms ``u_0 … u_{m-1}`` are turned into normal scores, correlated by the
Gaussian-copula blocks (Cholesky factors of the normal-score matrices, per level of a
conditioning categorical), mapped through the marginals, completed by the derived
expressions and tested against the inclusion/exclusion criteria and, when subgroups are
oversampled, accepted with probability ``f(x) / max f`` (``f`` = largest factor of the
subgroups the patient belongs to, 1 outside them). A rejected patient redraws with attempt
``a + 1`` from the same stream, so a cohort never depends on batch size or worker count.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from scipy import special

from ._random import MAX_PATIENTS, patient_keys, uniforms
from .errors import CohortError
from .spec import PopulationSpec, load_spec

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "MAX_ATTEMPTS",
    "MIN_ACCEPTANCE",
    "PILOT_DRAWS",
    "RANDOM_STREAM",
    "check_acceptance",
    "sample",
    "write_cohort",
]

#: Patients per batch (and per zarr chunk) when ``write_cohort`` is not told otherwise.
DEFAULT_BATCH_SIZE = 50_000
#: Criteria accepting fewer draws than this are rejected as a spec error.
MIN_ACCEPTANCE = 0.01
#: Draws (attempt 0 of patients 0 … PILOT_DRAWS-1) used to estimate the acceptance rate.
PILOT_DRAWS = 10_000
_PILOT_CACHE: dict[tuple[str, str, int], float] = {}
#: A patient still rejected after this many attempts is an error (probability < 1e-40 at 1%).
MAX_ATTEMPTS = 10_000
RANDOM_STREAM = (
    "patient i: key = SeedSequence(seed, spawn_key=(i,)).generate_state(1, uint64) "
    "(= patient_seed); uniforms from Philox4x32-10 with counter (block, attempt, 0, 0), "
    "two 53-bit uniforms per block (cohorts._random)"
)


def _spec(spec: PopulationSpec | str | Path | Mapping[str, Any]) -> PopulationSpec:
    return spec if isinstance(spec, PopulationSpec) else load_spec(spec)


def _check_range(n: int, start: int, seed: int) -> None:
    if int(n) != n or n < 0:
        raise CohortError(f"n must be a non-negative integer, got {n!r}")
    if int(start) != start or start < 0:
        raise CohortError(f"start must be a non-negative integer, got {start!r}")
    if start + n > MAX_PATIENTS:
        raise CohortError(f"patient indices must stay below 2**32, got start + n = {start + n}")
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise CohortError(f"seed must be a non-negative integer, got {seed!r}")


def _correlate(z: np.ndarray, chol: np.ndarray) -> np.ndarray:
    """``z @ chol.T`` summed in a fixed order per row.

    A BLAS matrix product may round differently with the number of rows (gemv vs gemm
    kernels), which would make a patient's values depend on the batch; element-wise
    accumulation does not.
    """
    out = np.zeros_like(z)
    for i in range(chol.shape[0]):
        for j in range(i + 1):
            out[:, i] += chol[i, j] * z[:, j]
    return out


def _evaluate(
    spec: PopulationSpec, keys: np.ndarray, attempt: int
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Variables of one attempt for each key; also the oversampling uniform (or None)."""
    u = uniforms(keys, attempt, spec.n_draws)
    names = list(spec.variables)
    col = {name: i for i, name in enumerate(names)}
    z = special.ndtri(u[:, : len(names)])
    for block in spec.copulas:
        if block.given is None:
            idx = [col[v] for v in block.variables]
            z[:, idx] = _correlate(z[:, idx], block.cholesky[None])
    values: dict[str, np.ndarray] = {}

    def compute(name: str) -> None:
        var = spec.variables[name]
        zc = z[:, col[name]]
        if var.given is None:
            values[name] = var.marginals[None].from_normal(zc)
            return
        levels = values[var.given]
        out = np.empty(zc.shape, dtype=np.int8 if var.is_categorical else np.float64)
        for code, level in enumerate(spec.variables[var.given].categories):
            mask = levels == code
            out[mask] = var.marginals[level].from_normal(zc[mask])
        values[name] = out

    givens = {v.given for v in spec.variables.values()} | {b.given for b in spec.copulas}
    for name in names:
        if name in givens:
            compute(name)
    for block in spec.copulas:
        if block.given is not None:
            idx = np.asarray([col[v] for v in block.variables])
            levels = values[block.given]
            for code, level in enumerate(spec.variables[block.given].categories):
                rows = np.flatnonzero(levels == code)
                z[np.ix_(rows, idx)] = _correlate(z[np.ix_(rows, idx)], block.cholesky[level])
    for name in names:
        if name not in values:
            compute(name)
    out = {name: values[name] for name in names}
    n = keys.shape[0]
    # overflow or an invalid operation gives inf/nan, which _check_finite reports by name
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for name, d in spec.derived.items():
            result = np.broadcast_to(np.asarray(d.func(out)), (n,))
            out[name] = result.astype(np.int8 if result.dtype == bool else np.float64)
    return out, (u[:, -1] if spec.oversample else None)


def _check_finite(spec: PopulationSpec, values: Mapping[str, np.ndarray], what: str) -> None:
    """Stop if a derived variable is inf or nan for any patient (``what`` names them)."""
    for name, d in spec.derived.items():
        bad = int(np.count_nonzero(~np.isfinite(values[name])))
        if bad:
            n = values[name].shape[0]
            raise spec.error(
                f"derived.{name}.expr",
                f"{name} = {d.expr!r} is not finite (inf or nan: overflow, division by zero "
                f"or a logarithm of a non-positive number) for {bad} of {n} {what}; allowed: "
                "an expression with finite values for every patient",
            )


def _criteria_mask(spec: PopulationSpec, values: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    ok = np.ones(n, dtype=bool)
    for c in spec.criteria:
        hit = np.broadcast_to(np.asarray(c.func(values), dtype=bool), (n,))
        ok &= hit if c.kind == "inclusion" else ~hit
    return ok


def _oversample_factor(spec: PopulationSpec, values: Mapping[str, np.ndarray], n: int):
    """Largest factor of the oversampled subgroups each patient belongs to (1 outside)."""
    factor = np.full(n, np.nan)
    for o in spec.oversample:
        hit = np.broadcast_to(np.asarray(o.func(values), dtype=bool), (n,))
        factor = np.where(hit, np.fmax(factor, o.factor), factor)
    return np.where(np.isnan(factor), 1.0, factor)


def _max_factor(spec: PopulationSpec) -> float:
    return max([1.0, *(o.factor for o in spec.oversample)])


def check_acceptance(spec: PopulationSpec, seed: int) -> float:
    """Acceptance rate of the criteria on a fixed pilot; raise if below 1 %.

    The pilot is attempt 0 of patients ``0 … PILOT_DRAWS-1`` (a pure function of spec and
    seed, so the decision never depends on how the cohort is batched).

    Returns
    -------
    float
        Fraction of pilot draws that meet all criteria (1.0 without criteria).

    Raises
    ------
    CohortSpecError
        Key ``criteria`` if the rate is below :data:`MIN_ACCEPTANCE`; the message gives the
        overall and per-criterion acceptance rates.
    """
    if not spec.criteria:
        return 1.0
    cache_key = (spec.sha256, spec.source_file, int(seed))
    if cache_key in _PILOT_CACHE:
        return _PILOT_CACHE[cache_key]
    keys = patient_keys(seed, np.arange(PILOT_DRAWS))
    values, _ = _evaluate(spec, keys, 0)
    ok = _criteria_mask(spec, values, PILOT_DRAWS)
    rate = float(ok.mean())
    # inf/nan derived values explain criteria that nobody passes better than the criteria do
    _check_finite(
        spec,
        {k: v[ok] if rate else v for k, v in values.items()},
        "pilot draws meeting the criteria" if rate else "pilot draws",
    )
    if rate == 0.0:
        parts = []
        for c in spec.criteria:
            hit = np.broadcast_to(np.asarray(c.func(values), dtype=bool), (PILOT_DRAWS,))
            kept = int(np.count_nonzero(hit if c.kind == "inclusion" else ~hit))
            parts.append(f"{c.kind} {c.expr!r} keeps {kept} of {PILOT_DRAWS}")
        raise spec.error(
            "criteria",
            f"no patient meets the inclusion/exclusion criteria: none of {PILOT_DRAWS} pilot "
            f"draws (seed {seed}) passes them all ({'; '.join(parts)}); "
            "allowed: criteria that at least 1% of the population meets",
        )
    if rate < MIN_ACCEPTANCE:
        parts = []
        for c in spec.criteria:
            hit = np.broadcast_to(np.asarray(c.func(values), dtype=bool), (PILOT_DRAWS,))
            parts.append(
                f"{c.kind} {c.expr!r}: {float((hit if c.kind == 'inclusion' else ~hit).mean()):.2%}"
            )
        raise spec.error(
            "criteria",
            f"criteria accept {rate:.3%} of draws ({int(ok.sum())} of {PILOT_DRAWS} pilot "
            f"draws, seed {seed}); allowed: at least {MIN_ACCEPTANCE:.0%}. Per criterion: "
            + "; ".join(parts),
        )
    if len(_PILOT_CACHE) > 64:
        _PILOT_CACHE.clear()
    _PILOT_CACHE[cache_key] = rate
    return rate


def _generate(spec: PopulationSpec, seed: int, index: np.ndarray):
    """Accepted draws of patients ``index`` plus acceptance counts."""
    n = index.shape[0]
    keys = patient_keys(seed, index)
    out: dict[str, np.ndarray] = {}
    weight = np.ones(n)
    pending = np.arange(n)
    fmax = _max_factor(spec)
    draws = 0
    passed = 0
    attempt = 0
    while pending.size:
        if attempt >= MAX_ATTEMPTS:
            raise spec.error(
                "criteria",
                f"{pending.size} patient(s) still rejected after {MAX_ATTEMPTS} attempts "
                f"(acceptance so far {passed / max(draws, 1):.3%}); loosen the criteria",
            )
        values, u_over = _evaluate(spec, keys[pending], attempt)
        m = pending.size
        ok = _criteria_mask(spec, values, m)
        _check_finite(
            spec,
            {k: values[k][ok] for k in spec.derived},
            f"patients accepted at attempt {attempt} of patients {index[0]}..{index[-1]}",
        )
        draws += m
        passed += int(ok.sum())
        if spec.oversample:
            factor = _oversample_factor(spec, values, m)
            ok &= u_over < factor / fmax
        else:
            factor = None
        if not out:
            out = {k: np.empty(n, dtype=v.dtype) for k, v in values.items()}
        rows = pending[ok]
        for k, v in values.items():
            out[k][rows] = v[ok]
        if factor is not None:
            weight[rows] = 1.0 / factor[ok]
        pending = pending[~ok]
        attempt += 1
    if not out:  # n == 0
        values, _ = _evaluate(spec, keys, 0)
        out = values
    return out, keys, weight, draws, passed


def _dataset(spec, seed, index, values, keys, weight, draws, passed) -> xr.Dataset:
    data_vars = {}
    for name, var in spec.variables.items():
        attrs = {"units": var.units, "long_name": var.long_name, "source": var.source}
        if var.is_categorical:
            cats = var.categories
            attrs["flag_values"] = np.arange(len(cats), dtype=np.int8)
            attrs["flag_meanings"] = " ".join(cats)
        if var.given is not None:
            attrs["given"] = var.given
        data_vars[name] = xr.Variable("patient", values[name], attrs)
    for name, d in spec.derived.items():
        attrs = {
            "units": d.units,
            "long_name": d.long_name,
            "source": d.source,
            "expression": d.expr,
        }
        if values[name].dtype == np.int8:
            attrs["flag_values"] = np.array([0, 1], dtype=np.int8)
            attrs["flag_meanings"] = "false true"
        data_vars[name] = xr.Variable("patient", values[name], attrs)
    data_vars["patient_seed"] = xr.Variable(
        "patient",
        keys.astype(np.uint64),
        {
            "units": "1",
            "long_name": "key of the patient's random stream",
            "source": RANDOM_STREAM,
        },
    )
    over = "; ".join(f"{o.name}: {o.where} x{o.factor:g} ({o.source})" for o in spec.oversample)
    data_vars["sampling_weight"] = xr.Variable(
        "patient",
        weight.astype(np.float64),
        {
            "units": "1",
            "long_name": "sampling weight (inverse oversampling factor)",
            "source": f"oversampled subgroups: {over}" if over else "no oversampling (all 1.0)",
        },
    )
    n = index.shape[0]
    attrs = {
        "title": spec.title,
        "spec_name": spec.name,
        "spec_file": spec.source_file,
        "spec_sha256": spec.sha256,
        "seed": int(seed) if seed < 2**63 else str(seed),
        "n_patients": int(n),
        "first_patient": int(index[0]) if n else 0,
        "n_draws": int(draws),
        "n_draws_meeting_criteria": int(passed),
        "acceptance_rate": n / draws if draws else 1.0,
        "criteria_acceptance_rate": passed / draws if draws else 1.0,
        "criteria": " ; ".join(f"{c.kind}: {c.expr}" for c in spec.criteria) or "none",
        "random_stream": RANDOM_STREAM,
        "Conventions": "CF-1.10",
    }
    return xr.Dataset(
        data_vars,
        coords={
            "patient": (
                "patient",
                index.astype(np.int64),
                {"units": "1", "long_name": "patient index", "source": "0 ... n-1"},
            )
        },
        attrs=attrs,
    )


def sample(
    spec: PopulationSpec | str | Path | Mapping[str, Any], n: int, *, seed: int, start: int = 0
) -> xr.Dataset:
    """Sample patients ``start … start+n-1`` in memory.

    Parameters
    ----------
    spec : PopulationSpec, path or mapping
        Population spec (loaded with :func:`cohorts.load_spec` if not already).
    n : int
        Number of patients.
    seed : int
        Trial seed (non-negative integer).
    start : int, default 0
        Index of the first patient; ``sample(spec, 5, seed=s, start=3)`` equals patients 3 … 7
        of ``sample(spec, 10, seed=s)``.

    Returns
    -------
    xarray.Dataset
        Dim ``patient`` (int64 coordinate); one variable per sampled and derived variable
        (categoricals as int8 codes with ``flag_values``/``flag_meanings``), ``patient_seed``
        (uint64) and ``sampling_weight`` (float64); every variable has attrs ``units``,
        ``long_name`` and ``source``. Dataset attrs carry the spec name, file and hash, the
        seed and the acceptance rate of these patients (``acceptance_rate`` overall,
        ``criteria_acceptance_rate`` for the criteria alone).

    Raises
    ------
    CohortSpecError
        The criteria accept fewer than 1 % of draws.

    Examples
    --------
    >>> import cohorts
    >>> spec = cohorts.load_spec({"name": "demo", "variables": {"x": {
    ...     "long_name": "x", "units": "1", "source": "example",
    ...     "distribution": {"type": "normal", "mean": 0, "sd": 1}}}})
    >>> ds = cohorts.sample(spec, 4, seed=1)
    >>> ds.sizes["patient"]
    4
    """
    spec = _spec(spec)
    _check_range(n, start, seed)
    check_acceptance(spec, seed)
    return _sample(spec, int(n), seed=int(seed), start=int(start))


def _sample(spec: PopulationSpec, n: int, *, seed: int, start: int) -> xr.Dataset:
    index = np.arange(start, start + n, dtype=np.int64)
    values, keys, weight, draws, passed = _generate(spec, seed, index)
    return _dataset(spec, seed, index, values, keys, weight, draws, passed)


def write_cohort(
    spec: PopulationSpec | str | Path | Mapping[str, Any],
    n: int,
    out: str | Path,
    *,
    seed: int,
    batch_size: int | None = None,
) -> xr.Dataset:
    """Generate ``n`` patients batch by batch into a zarr store; return it opened lazily.

    The store is created first (metadata only, chunks of ``batch_size`` patients), then each
    batch is sampled and written to its own region, so memory is bounded by one batch
    whatever ``n`` is. Contents do not depend on ``batch_size``.

    Parameters
    ----------
    spec : PopulationSpec, path or mapping
        Population spec.
    n : int
        Number of patients.
    out : str or Path
        Zarr store to create (overwritten if it exists).
    seed : int
        Trial seed.
    batch_size : int, optional
        Patients per batch and per zarr chunk (default ``min(n, DEFAULT_BATCH_SIZE)``).

    Returns
    -------
    xarray.Dataset
        The store opened with :func:`xarray.open_zarr` (dask-backed). Attrs as in
        :func:`sample`, with the acceptance rate over the whole cohort.

    Raises
    ------
    CohortSpecError
        The criteria accept fewer than 1 % of draws.
    """
    spec = _spec(spec)
    _check_range(n, 0, seed)
    if n < 1:
        raise CohortError(f"n must be at least 1 to write a cohort, got {n}")
    if batch_size is None:
        batch_size = min(int(n), DEFAULT_BATCH_SIZE)
    if int(batch_size) != batch_size or batch_size < 1:
        raise CohortError(f"batch_size must be a positive integer, got {batch_size!r}")
    n, seed, batch_size = int(n), int(seed), int(batch_size)
    check_acceptance(spec, seed)

    import zarr

    out = str(out)
    draws = passed = 0
    with warnings.catch_warnings():
        # zarr-python warns that consolidated metadata is not yet part of the v3 spec; we
        # consolidate anyway so readers open the store with one request.
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            ds = _sample(spec, stop - start, seed=seed, start=start)
            draws += ds.attrs["n_draws"]
            passed += ds.attrs["n_draws_meeting_criteria"]
            if start == 0:
                group = _create_store(ds, n, batch_size, out)
                arrays = {name: group[name] for name in ds.variables}
            # Region write: the batch fills whole chunks [start, stop) of every array (the
            # dtypes are those of the template, no encoding is applied by xarray).
            for name, array in arrays.items():
                array[start:stop] = ds[name].values
            del ds
        group.attrs.update(
            {
                "n_patients": n,
                "n_draws": int(draws),
                "n_draws_meeting_criteria": int(passed),
                "acceptance_rate": n / draws,
                "criteria_acceptance_rate": passed / draws,
            }
        )
        zarr.consolidate_metadata(out)
        return xr.open_zarr(out)


def _create_store(first: xr.Dataset, n: int, batch_size: int, out: str):
    """Create an ``n``-patient store shaped like ``first`` (metadata only); return its group.

    The ``patient`` coordinate is created as a plain zarr array and filled batch by batch
    like the data variables, so no array of length ``n`` is ever held in memory.
    """
    import dask.array as da
    import zarr

    template = xr.Dataset(
        {
            k: xr.Variable("patient", da.zeros(n, chunks=batch_size, dtype=v.dtype), v.attrs)
            for k, v in first.data_vars.items()
        },
        attrs=first.attrs,
    )
    encoding = {k: {"chunks": (batch_size,)} for k in template.variables}
    template.to_zarr(out, mode="w", compute=False, encoding=encoding, consolidated=False)
    group = zarr.open_group(out, mode="r+")
    group.create_array(
        "patient",
        shape=(n,),
        chunks=(batch_size,),
        dtype="int64",
        dimension_names=["patient"],
        attributes=dict(first["patient"].attrs),
    )
    return group
