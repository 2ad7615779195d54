"""``isct verify``: check a results folder against its manifest and by re-simulation.

Two checks, both naming what differs:

1. every hash in ``manifest.json`` (config, population spec, model source, comparators,
   plan, stores, tables, report) is recomputed (:func:`isct.provenance.check_manifest`).
   What lies inside the results folder is resolved against the folder given, wherever it
   was copied, moved or renamed (:func:`locator`); what lies outside it (config, inputs,
   the report) against the run directory: ``root`` if given, else the folder above
   ``results/`` when the results folder sits in one. An outside entry that is not found
   there is *unchecked* (listed, not a difference) unless ``root`` was given;
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
import zarr

from models import get_model, run_batch

from .errors import IsctError
from .jsonio import plain, read_json
from .provenance import MANIFEST_NAME, ManifestError, Mismatch, check_manifest
from .trial import Trial, load_config

__all__ = [
    "Difference",
    "Resimulation",
    "VerifyResult",
    "locator",
    "stored_model",
    "rerun_patients",
    "resimulate",
    "run_directory",
    "sample_positions",
    "values_match",
    "verify",
]


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
    unchecked : dict of str to str
        Manifest entries outside the results folder that were not found (entry → recorded
        path): no run directory was given to look for them in.
    """

    results_dir: str
    hash_mismatches: list[Mismatch]
    resimulation: Resimulation | None
    unchecked: dict[str, str] = field(default_factory=dict)

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
            "unchecked": dict(self.unchecked),
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


def stored_model(outcomes_attrs: dict[str, Any], trial: Trial | None):
    """The trial's model (its options: external solvers, import strings) when it is the one
    that ran; else the registry name the outcomes store recorded."""
    if trial is not None and (
        trial["model"]["name"] == "external" or trial.model.name == outcomes_attrs["model"]
    ):
        return trial.model
    return get_model(outcomes_attrs["model"])


def _stores(results: Path) -> tuple[Path, Path]:
    cohort_path, outcomes_path = results / "cohort.zarr", results / "outcomes.zarr"
    for p in (cohort_path, outcomes_path):
        if not (p / "zarr.json").exists():
            raise IsctError(f"{p}: no zarr store here; is {results} a results folder of isct?")
    return cohort_path, outcomes_path


def rerun_patients(
    results_dir: str | os.PathLike, idx: np.ndarray, *, trial: Trial | None = None
) -> tuple[Any, list[dict], dict[str, np.ndarray]]:
    """Simulate the patients at positions ``idx`` again in every arm of a results folder.

    Parameters
    ----------
    results_dir : str or path
        Folder holding ``cohort.zarr`` and ``outcomes.zarr``.
    idx : ndarray of int
        Sorted positions along the ``patient`` dimension.
    trial : Trial, optional
        Supplies the model's options (see :func:`resimulate`).

    Returns
    -------
    model : Model
        The model that ran (its ``version`` is not checked here).
    arms : list of dict
        The arms recorded in the outcomes store.
    fresh : dict of str to ndarray
        Output → values of shape ``(arm, len(idx)[, ...])``.

    Raises
    ------
    IsctError
        If the folder has no cohort or outcomes store.
    """
    results = Path(results_dir)
    cohort_path, outcomes_path = _stores(results)
    attrs = zarr.open_group(outcomes_path, mode="r").attrs.asdict()
    model = stored_model(attrs, trial)
    arms = json.loads(attrs["arms_json"])
    settings = json.loads(attrs["settings_json"])
    cohort = zarr.open_group(cohort_path, mode="r")
    # read only the chosen patients (orthogonal selection), not whole columns
    patients = {name: np.asarray(cohort[name].oindex[idx]) for name in model.inputs}
    patients["patient"] = np.asarray(cohort["patient"].oindex[idx])
    by_arm = [
        run_batch(
            model,
            patients,
            arm["device"],
            {**settings, "arm": arm["name"], "runs_dir": str(results / "runs")},
        )
        for arm in arms
    ]
    fresh = {key: np.stack([out[key] for out in by_arm]) for key in by_arm[0]} if by_arm else {}
    return model, arms, fresh


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
    _, outcomes_path = _stores(results)
    outcomes = xr.open_zarr(outcomes_path, consolidated=False)
    model = stored_model(outcomes.attrs, trial)
    arms = json.loads(outcomes.attrs["arms_json"])
    n = outcomes.sizes["patient"]
    idx = sample_positions(n, sample, seed)
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
    _, _, fresh = rerun_patients(results, idx, trial=trial)
    stored_group = zarr.open_group(outcomes_path, mode="r")
    stored = {key: np.asarray(stored_group[key].oindex[(slice(None), idx)]) for key in fresh}
    differences = [
        Difference(
            patient=_plain(ids[i]),
            arm=arm["name"],
            output=key,
            stored=_plain(stored[key][a, i]),
            resimulated=_plain(values[a, i]),
        )
        for a, arm in enumerate(arms)
        for key, values in fresh.items()
        for i in np.flatnonzero(
            ~values_match(stored[key][a], values[a]).reshape(len(idx), -1).all(axis=1)
        )
    ]
    return Resimulation(**{**vars(checked), "outputs": list(fresh), "differences": differences})


def values_match(
    stored: np.ndarray, values: np.ndarray, tol: tuple[float, float] | None = None
) -> np.ndarray:
    """Elementwise: equal bit for bit, or with ``tol = (rtol, atol)`` within
    ``atol + rtol * |stored|`` (floats only); NaN matches NaN."""
    if stored.dtype.kind != "f" or values.dtype.kind != "f":
        return stored == values
    both_nan = np.isnan(stored) & np.isnan(values)
    if tol is None:
        return (stored == values) | both_nan
    rtol, atol = tol
    with np.errstate(invalid="ignore"):
        return (np.abs(values - stored) <= atol + rtol * np.abs(stored)) | both_nan


def sample_positions(n: int, sample: int | None, seed: int) -> np.ndarray:
    """Sorted positions of ``sample`` patients of ``n`` chosen with ``seed`` (all when None)."""
    k = n if sample is None else min(sample, n)
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


def run_directory(results: Path, root: str | os.PathLike | None) -> Path | None:
    """Where the manifest's entries outside the results folder are looked up: ``root`` if
    given, else the run directory above ``results/<trial>``, else none."""
    if root is not None:
        return Path(root).resolve()
    if results.parent.name == "results":
        return results.parent.parent
    return None


def locator(
    results: Path, manifest: dict[str, Any], root: Path | None, *, strict: bool
) -> Callable[[str, str], Path | None]:
    """Where each manifest entry is now, for a results folder that may have been copied.

    Parameters
    ----------
    results : Path
        The results folder being checked (holding ``manifest.json``).
    manifest : dict
        Its manifest; ``results_dir`` is where the folder was when the manifest was written
        (manifests before it was recorded: ``results/<trial>``).
    root : Path or None
        The run directory that relative paths outside the folder are resolved against.
    strict : bool
        When False, an entry outside the folder that is not found is returned as None
        (unchecked) rather than as a missing file.

    Returns
    -------
    callable
        ``locate(entry, recorded_path) -> Path or None`` for
        :func:`isct.provenance.check_manifest`.
    """
    inside = str(manifest.get("results_dir") or f"results/{manifest.get('trial')}").rstrip("/")

    def locate(_label: str, recorded: str) -> Path | None:
        if recorded == inside:
            return results
        if recorded.startswith(inside + "/"):
            return results / recorded[len(inside) + 1 :]
        path = Path(recorded)
        if not path.is_absolute():
            if root is None:
                return None
            path = root / path
        return path if strict or path.exists() else None

    return locate


def verify(
    results_dir: str | os.PathLike,
    *,
    sample: int | None = 100,
    seed: int = 0,
    root: str | os.PathLike | None = None,
) -> VerifyResult:
    """Every difference between a results folder, its manifest and a re-simulation.

    The manifest's entries inside the results folder are resolved against the folder given,
    so a copy is checked, not the original it was copied from. Entries outside it (config,
    population spec, model source, the report) are resolved against ``root``, else against
    the folder above ``results/`` when the results folder sits in one (the run directory),
    else only where recorded as absolute paths; without ``root`` an outside entry that is
    not found is listed as unchecked instead of missing.

    Parameters
    ----------
    results_dir : str or path
        ``results/<trial>`` of a finished run (with ``manifest.json``), or a copy of it
        under any name.
    sample : int or None, default 100
        Patients to re-simulate; 0 checks the hashes only, None re-simulates every patient.
    seed : int, default 0
        Seed of the choice of patients.
    root : str or path, optional
        The run directory (where ``results/`` was); every entry outside the folder must
        then be found there.

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
    run_dir = run_directory(results, root)
    target = results / MANIFEST_NAME
    try:
        manifest = read_json(target, "manifest", ManifestError)
        locate = locator(results, manifest, run_dir, strict=root is not None)
        mismatches, unchecked = check_manifest(target, locate)
    except ManifestError as err:
        raise IsctError(str(err)) from err
    resim = None
    if sample is None or sample > 0:
        trial = _trial(manifest, locate, run_dir)
        resim = resimulate(results, sample=sample, seed=seed, trial=trial)
    return VerifyResult(str(results), mismatches, resim, unchecked)


def _trial(manifest: dict[str, Any], locate, run_dir: Path | None) -> Trial | None:
    """The trial config the manifest names, if it can be found, read and validated."""
    try:
        path = locate("config", manifest["config"]["path"])
        if path is None:
            return None
        return load_config(path, workdir=run_dir or path.parent)
    except (OSError, KeyError, ValueError, IsctError):
        return None
