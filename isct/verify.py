"""``isct verify``: check a results folder against its manifest and by re-simulation.

Two checks, both naming what differs:

1. every hash in ``manifest.json`` (config, population spec, model source, comparators,
   plan, stores, tables, report) is recomputed (:func:`isct.provenance.verify_hashes`);
2. ``sample`` patients chosen at random (or all of them) are simulated again, in this
   process, from the stored cohort with the model, arms and settings recorded in the outcomes
   store, and compared bit for bit with the stored outcomes; each difference names the
   patient id, the arm and the output.

The report stage runs this module in a separate process (``python -m isct verify …
--json FILE``) that knows nothing but the results folder and its manifest.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
import zarr

from models import get_model, run_batch

from .errors import IsctError
from .jsonio import plain
from .provenance import MANIFEST_NAME, ManifestError, Mismatch, verify_hashes
from .trial import Trial, load_config

__all__ = ["Difference", "Resimulation", "VerifyResult", "resimulate", "verify"]


def _plain(value: Any) -> Any:
    """A stored or re-simulated value as strict JSON (NaN as None, arrays as lists)."""
    return plain(np.asarray(value), nan=None)


@dataclass(frozen=True)
class Difference:
    """One patient × arm × output whose re-simulated value is not the stored one.

    Attributes
    ----------
    patient : int
        Patient id (the ``patient`` coordinate of the outcomes store).
    arm : str
        Arm name.
    output : str
        Model output (store variable).
    stored, resimulated : object
        The two values (JSON: numbers, None for NaN, lists for outputs over time).
    """

    patient: int
    arm: str
    output: str
    stored: Any
    resimulated: Any

    def __str__(self) -> str:
        return (
            f"outcomes.zarr: patient {self.patient} arm {self.arm!r} {self.output}: "
            f"stored {self.stored!r}, re-simulated {self.resimulated!r}"
        )


@dataclass(frozen=True)
class Resimulation:
    """What a re-simulation checked and what differed.

    Attributes
    ----------
    model, model_version : str
        Model the outcomes store was made with.
    patients : list of int
        Patient ids re-simulated (in every arm).
    arms, outputs : list of str
        Arms and outputs compared.
    seed : int
        Seed that chose the patients.
    differences : list of Difference
        Empty when every value matches bit for bit.
    refused : str or None
        Why nothing was re-simulated (the installed model is another version), else None.
    """

    model: str
    model_version: str
    patients: list[int]
    arms: list[str]
    outputs: list[str]
    seed: int
    differences: list[Difference] = field(default_factory=list)
    refused: str | None = None

    @property
    def match(self) -> bool:
        """True when the patients were re-simulated and every value matched."""
        return self.refused is None and not self.differences

    def problems(self) -> list[str]:
        """One line per difference (or the reason for refusing)."""
        return [self.refused] if self.refused else [str(d) for d in self.differences]


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :func:`verify`: manifest differences and the re-simulation.

    Attributes
    ----------
    results_dir : str
        The folder checked.
    hash_mismatches : list of Mismatch
        Files that differ from the manifest.
    resimulation : Resimulation or None
        None when no patient was re-simulated (``sample=0``).
    """

    results_dir: str
    hash_mismatches: list[Mismatch]
    resimulation: Resimulation | None

    def problems(self) -> list[str]:
        """Every difference, one line each; empty when the folder checks out."""
        out = [str(m) for m in self.hash_mismatches]
        return out + (self.resimulation.problems() if self.resimulation else [])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (what ``isct verify --json`` writes)."""
        resim = self.resimulation
        return {
            "results_dir": self.results_dir,
            "ok": not self.problems(),
            "hash_mismatches": [vars(m) for m in self.hash_mismatches],
            "resimulation": None
            if resim is None
            else {
                "match": resim.match,
                "model": resim.model,
                "model_version": resim.model_version,
                "seed": resim.seed,
                "patients": resim.patients,
                "arms": resim.arms,
                "outputs": resim.outputs,
                "differences": [vars(d) for d in resim.differences],
                "refused": resim.refused,
            },
        }


def resimulate(
    results_dir: str | os.PathLike,
    *,
    sample: int | None = 100,
    seed: int = 0,
    trial: Trial | None = None,
) -> Resimulation:
    """Re-simulate ``sample`` random patients of every arm and compare bit for bit.

    Parameters
    ----------
    results_dir : str or path
        Folder holding ``cohort.zarr`` and ``outcomes.zarr``.
    sample : int or None, default 100
        Number of patients (chosen with ``seed``); None re-simulates every patient.
    seed : int, default 0
        Seed of the choice of patients.
    trial : Trial, optional
        The trial; supplies the model's options (external solvers). Without it the
        model is found by the registry name recorded in the outcomes store.

    Returns
    -------
    Resimulation
        Patients, arms and outputs checked and every difference.

    Raises
    ------
    IsctError
        If the folder has no cohort or outcomes store.
    """
    results = Path(results_dir)
    cohort_path, outcomes_path = results / "cohort.zarr", results / "outcomes.zarr"
    for p in (cohort_path, outcomes_path):
        if not (p / "zarr.json").exists():
            raise IsctError(f"{p}: no zarr store here; is {results} a results folder of isct?")
    outcomes = xr.open_zarr(outcomes_path, consolidated=False)
    # the trial's model (its options: external solvers, import strings) when it is the one
    # that ran; else the registry name the outcomes store recorded
    if trial is not None and (
        trial["model"]["name"] == "external" or trial.model.name == outcomes.attrs["model"]
    ):
        model = trial.model
    else:
        model = get_model(outcomes.attrs["model"])
    arms = json.loads(outcomes.attrs["arms_json"])
    settings = json.loads(outcomes.attrs["settings_json"])
    n = outcomes.sizes["patient"]
    rng = np.random.default_rng(seed)
    k = n if sample is None else min(sample, n)
    idx = np.sort(rng.choice(n, size=k, replace=False))
    ids = outcomes["patient"].values[idx]
    checked = Resimulation(
        model=str(outcomes.attrs["model"]),
        model_version=str(outcomes.attrs["model_version"]),
        patients=[_plain(i) for i in ids],
        arms=[arm["name"] for arm in arms],
        outputs=[],
        seed=seed,
    )
    if str(model.version) != checked.model_version:
        return Resimulation(
            **{**vars(checked), "patients": []},
            refused=f"{outcomes_path}: made with model {model.name!r} version "
            f"{checked.model_version}, installed version is {model.version}",
        )
    cohort = zarr.open_group(cohort_path, mode="r")
    # read only the sampled patients (orthogonal selection), not whole columns
    patients = {name: np.asarray(cohort[name].oindex[idx]) for name in model.inputs}
    patients["patient"] = ids
    stored_group = zarr.open_group(outcomes_path, mode="r")
    differences, outputs = [], []
    for a, arm in enumerate(arms):
        fresh = run_batch(
            model,
            patients,
            arm["device"],
            {**settings, "arm": arm["name"], "runs_dir": str(results / "runs")},
        )
        for key, values in fresh.items():
            if key not in outputs:
                outputs.append(key)
            stored = np.asarray(stored_group[key].oindex[(a, idx)])
            same = (
                (stored == values) | (np.isnan(stored) & np.isnan(values))
                if values.dtype.kind == "f"
                else stored == values
            )
            same = same.reshape(len(idx), -1).all(axis=1)
            differences += [
                Difference(
                    patient=_plain(ids[i]),
                    arm=arm["name"],
                    output=key,
                    stored=_plain(stored[i]),
                    resimulated=_plain(values[i]),
                )
                for i in np.flatnonzero(~same)
            ]
    return Resimulation(**{**vars(checked), "outputs": outputs, "differences": differences})


def verify(
    results_dir: str | os.PathLike, *, sample: int | None = 100, seed: int = 0
) -> VerifyResult:
    """Every difference between a results folder, its manifest and a re-simulation.

    The manifest's relative paths are resolved against the folder that holds ``results/``
    (the run's working directory).

    Parameters
    ----------
    results_dir : str or path
        ``results/<trial>`` of a finished run (with ``manifest.json``).
    sample : int or None, default 100
        Patients to re-simulate; 0 checks the hashes only, None re-simulates every patient.
    seed : int, default 0
        Seed of the choice of patients.

    Returns
    -------
    VerifyResult
        ``problems()`` lists every difference; ``to_dict()`` is the JSON of ``--json``.

    Raises
    ------
    IsctError
        If the manifest cannot be read, or the folder has no cohort or outcomes store.
    """
    results = Path(results_dir).resolve()
    root = results.parent.parent if results.parent.name == "results" else Path.cwd()
    try:
        mismatches = verify_hashes(results, root=root)
    except ManifestError as err:
        raise IsctError(str(err)) from err
    resim = None
    if sample is None or sample > 0:
        resim = resimulate(results, sample=sample, seed=seed, trial=_trial(results, root))
    return VerifyResult(str(results), mismatches, resim)


def _trial(results: Path, root: Path) -> Trial | None:
    """The trial config the manifest names, if it is still readable and valid."""
    try:
        recorded = json.loads((results / MANIFEST_NAME).read_text())["config"]["path"]
        path = Path(recorded) if Path(recorded).is_absolute() else root / recorded
        return load_config(path, workdir=root)
    except (OSError, KeyError, ValueError, IsctError):
        return None
