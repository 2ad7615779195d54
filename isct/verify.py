"""``isct verify``: check a results folder against its manifest and by re-simulation.

Two checks, both naming what differs:

1. every hash in ``manifest.json`` (config, population spec, model source, comparators,
   plan, stores, tables, report) is recomputed (:func:`isct.provenance.verify_hashes`);
2. ``sample`` patients chosen at random are simulated again, in this process, from the stored
   cohort with the model, arms and settings recorded in the outcomes store, and compared bit
   for bit with the stored outcomes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import xarray as xr
import zarr

from models import get_model, run_batch

from .config import load_config, model_of
from .errors import IsctError
from .provenance import ManifestError, verify_hashes

__all__ = ["resimulate", "verify"]


def resimulate(
    results_dir: str | os.PathLike, *, sample: int = 100, seed: int = 0, config: dict | None = None
) -> list[str]:
    """Re-simulate ``sample`` random patients of every arm; describe each that differs.

    ``config`` (the trial config) supplies the model's options (external solvers); without it
    the model is found by the registry name recorded in the outcomes store.

    Raises
    ------
    IsctError
        If the folder has no cohort or outcomes store, or the installed model's version is
        not the one the store was made with.
    """
    results = Path(results_dir)
    cohort_path, outcomes_path = results / "cohort.zarr", results / "outcomes.zarr"
    for p in (cohort_path, outcomes_path):
        if not (p / "zarr.json").exists():
            raise IsctError(f"{p}: no zarr store here; is {results} a results folder of isct?")
    outcomes = xr.open_zarr(outcomes_path, consolidated=False)
    if config is not None and config["model"]["name"] in (outcomes.attrs["model"], "external"):
        model = model_of(config)
    else:
        model = get_model(outcomes.attrs["model"])
    if str(model.version) != str(outcomes.attrs["model_version"]):
        return [
            f"{outcomes_path}: made with model {model.name!r} version "
            f"{outcomes.attrs['model_version']}, installed version is {model.version}"
        ]
    arms = json.loads(outcomes.attrs["arms_json"])
    settings = json.loads(outcomes.attrs["settings_json"])
    n = outcomes.sizes["patient"]
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(n, size=min(sample, n), replace=False))
    cohort = zarr.open_group(cohort_path, mode="r")
    # read only the sampled patients (orthogonal selection), not whole columns
    patients = {k: np.asarray(cohort[k].oindex[idx]) for k in model.inputs}
    patients["patient"] = outcomes["patient"].values[idx]
    stored_group = zarr.open_group(outcomes_path, mode="r")
    problems = []
    for a, arm in enumerate(arms):
        fresh = run_batch(
            model,
            patients,
            arm["device"],
            {**settings, "arm": arm["name"], "runs_dir": str(results / "runs")},
        )
        for key, values in fresh.items():
            stored = np.asarray(stored_group[key].oindex[(a, idx)])
            same = (
                (stored == values) | (np.isnan(stored) & np.isnan(values))
                if values.dtype.kind == "f"
                else stored == values
            )
            same = same.reshape(len(idx), -1).all(axis=1)
            for i in np.flatnonzero(~same):
                problems.append(
                    f"outcomes.zarr: patient {patients['patient'][i]} arm {arm['name']!r} "
                    f"{key}: stored {stored[i]!r}, re-simulated {values[i]!r}"
                )
    return problems


def verify(results_dir: str | os.PathLike, *, sample: int = 100, seed: int = 0) -> list[str]:
    """Every difference between a results folder, its manifest and a re-simulation.

    The manifest's relative paths are resolved against the folder that holds ``results/``
    (the run's working directory).
    """
    results = Path(results_dir).resolve()
    root = results.parent.parent if results.parent.name == "results" else Path.cwd()
    try:
        mismatches = verify_hashes(results, root=root)
    except ManifestError as err:
        raise IsctError(str(err)) from err
    problems = [str(m) for m in mismatches]
    if sample > 0:
        problems += resimulate(
            results, sample=sample, seed=seed, config=_trial_config(results, root)
        )
    return problems


def _trial_config(results: Path, root: Path) -> dict | None:
    """The trial config the manifest names, if it is still readable and valid."""
    try:
        recorded = json.loads((results / "manifest.json").read_text())["config"]["path"]
        path = Path(recorded) if Path(recorded).is_absolute() else root / recorded
        return load_config(path)
    except (OSError, KeyError, ValueError, IsctError):
        return None
