"""Model runs for the analyses: parameter rows × patients through the engine.

:class:`EngineEvaluator` is the ``evaluate(X)`` callable that :mod:`credibility.uq`,
:mod:`credibility.sensitivity` and :mod:`credibility.calibration` drive. It turns parameter
rows × patients into one cohort whose uncertain device parameters are per-row columns and
runs it with :func:`isct.engine.simulate` into a store named by the rows' hash, so an
interrupted analysis resumes and a finished one is not recomputed.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from models import get_model

from .engine import simulate
from .errors import ConfigError
from .jsonio import plain

__all__ = ["EngineEvaluator", "clean_attrs", "first_patients", "float_endpoints"]

log = logging.getLogger("isct.evaluator")


def float_endpoints(model: Any, endpoints: Sequence[str]) -> list[str]:
    """The continuous (float, per-patient scalar) endpoints among ``endpoints``."""
    model = get_model(model)
    return [
        e
        for e in endpoints
        if np.dtype(model.outputs[e].dtype).kind == "f" and not model.outputs[e].dims
    ]


class EngineEvaluator:
    """``evaluate(X) -> {output: array (n_rows, n_patients, n_arms[, extra dims])}`` through
    the engine (extra dims: those of the output, e.g. per-element outputs of a patient).

    Parameters
    ----------
    cohort : xarray.Dataset
        The patients every parameter row is evaluated for (dim ``patient``).
    model : str, type or Model
        Registry name, import string, class or instance.
    arms : list of dict
        Arms as for :func:`isct.engine.simulate`.
    parameters : sequence of str
        Names of the columns of ``X``; each becomes a device value of the model.
    outputs : sequence of str
        Model outputs returned.
    runs_dir : path
        Folder of the evaluation stores (one per distinct ``X``).
    settings : mapping, optional
    batch_size : int
        Rows (parameter × patient) per Dask task.
    client : distributed.Client, optional
    """

    def __init__(
        self,
        cohort: xr.Dataset,
        model: Any,
        arms: list[dict],
        parameters: Sequence[str],
        outputs: Sequence[str],
        runs_dir: str | Path,
        *,
        settings: Mapping[str, Any] | None = None,
        batch_size: int = 2000,
        client: Any = None,
    ) -> None:
        clash = sorted(set(parameters) & set(map(str, cohort.data_vars)))
        if clash:
            raise ConfigError(
                f"uncertain parameters {clash} share names with cohort variables; "
                "parameters are device values and need their own names"
            )
        self.cohort = cohort
        self.model = model
        self.arms = arms
        self.parameters = list(parameters)
        self.outputs = list(outputs)
        self.runs_dir = Path(runs_dir)
        self.settings = dict(settings or {})
        self.batch_size = batch_size
        self.client = client
        self.evaluations = 0

    def _rows_cohort(self, X: np.ndarray) -> xr.Dataset:
        n_rows, k = len(X), self.cohort.sizes["patient"]
        data = {
            name: ("patient", np.tile(np.asarray(var.values), n_rows))
            for name, var in self.cohort.data_vars.items()
            if var.dims == ("patient",)
        }
        for j, name in enumerate(self.parameters):
            data[name] = ("patient", np.repeat(X[:, j], k))
        return xr.Dataset(data, coords={"patient": np.arange(n_rows * k)})

    def __call__(self, X: np.ndarray) -> dict[str, np.ndarray]:
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        digest = hashlib.sha256(X.tobytes() + repr(self.parameters).encode()).hexdigest()[:16]
        store = self.runs_dir / f"eval-{digest}.zarr"

        simulate(
            self._rows_cohort(X),
            self.model,
            self.arms,
            store,
            client=self.client,
            batch_size=self.batch_size,
            settings=self.settings,
            progress=False,
            device_inputs=self.parameters,
            on_mismatch="restart",  # a cache of this design made for another cohort or model
        )
        n_rows, k, n_arms = len(X), self.cohort.sizes["patient"], len(self.arms)
        self.evaluations += n_rows * k * n_arms
        out = {}
        ds = xr.open_zarr(store, consolidated=False, chunks=None)  # numpy reads, no Dask graph
        for name in self.outputs:
            values = ds[name].values  # (arm, row x patient[, extra dims])
            values = values.reshape(n_arms, n_rows, k, *values.shape[2:])
            out[name] = np.ascontiguousarray(np.moveaxis(values, 0, 2))
        log.info(
            "evaluated %d parameter rows x %d patients x %d arms -> %s", n_rows, k, n_arms, store
        )
        return out


def first_patients(cohort: str | Path, k: int, outcomes: str | Path | None = None) -> xr.Dataset:
    """The first ``k`` patients (with ``outcomes``: the first ``k`` simulated ok in every arm)."""
    ds = xr.open_zarr(cohort, consolidated=False)
    if outcomes is None:
        return ds.isel(patient=slice(0, min(k, ds.sizes["patient"]))).load()
    ok = (xr.open_zarr(outcomes, consolidated=False)["status"] == 0).all("arm").values
    return ds.isel(patient=np.flatnonzero(ok)[:k]).load()


def clean_attrs(ds: xr.Dataset) -> xr.Dataset:
    """A copy whose attributes are JSON (as zarr needs) and whose text coordinates are vlen."""
    ds = ds.copy()
    for name, coord in ds.coords.items():  # fixed-width unicode has no zarr v3 spec: use vlen
        if coord.dtype.kind == "U":
            ds = ds.assign_coords({name: coord.astype(object)})
    ds.attrs = plain(ds.attrs)
    for var in ds.variables.values():
        var.attrs = plain(var.attrs)
        var.encoding = {}
    return ds
