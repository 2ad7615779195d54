"""One function per workflow stage. The Snakemake scripts are thin adapters around these.

Each stage reads the validated trial config (a dict, defaults filled) and the paths Snakemake
hands it, calls the packages, and writes its outputs. Logic worth testing lives here or in
the packages, not in ``workflow/scripts``. Every stage ends by recording the SHA-256 of what
it read and wrote in ``provenance/<stage>.json`` next to its store
(:func:`isct.provenance.record_stage`).
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .cluster import ENV_WORKERS
from .config import model_of, resolve_path, validate_config
from .engine import expand_arms, simulate
from .provenance import record_stage

__all__ = ["run_cohort", "run_simulate", "setup_logging", "trial_config"]

log = logging.getLogger("isct")


def setup_logging(log_file: str, threads: int | None = None) -> None:
    """Send a stage's logging and warnings to its Snakemake log file (and stderr).

    ``threads`` (the Snakemake job's threads) sizes the embedded LocalCluster unless the
    command line chose the workers or a scheduler already.
    """
    if threads:
        os.environ.setdefault(ENV_WORKERS, str(threads))
    handler = logging.FileHandler(log_file, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    console = logging.StreamHandler()
    console.addFilter(lambda r: r.levelno >= logging.WARNING or r.name.startswith("isct"))
    logging.basicConfig(level=logging.INFO, handlers=[handler, console], force=True)
    # Snakemake marks directory() outputs with this file; zarr rightly ignores it
    warnings.filterwarnings("ignore", message="Object at .snakemake_timestamp")
    logging.captureWarnings(True)


def trial_config(config: dict, calibration: str | os.PathLike | None = None) -> dict:
    """Copy of a Snakemake config validated, with defaults filled and the calibration applied.

    With ``calibration`` (the calibrate stage's ``calibration.json``) the calibrated values
    (posterior means) replace the model settings, and, when ``calibration.propagate`` is on,
    the calibrated parameters join ``uncertainty.parameters`` with their posterior
    (truncated normal, mean and SD, within the prior range).
    """
    config = validate_config(json.loads(json.dumps(config)), source="<snakemake config>")
    if calibration is None:
        return config
    data = json.loads(Path(calibration).read_text())
    if not data.get("enabled"):
        return config
    config["model"]["settings"] = {**config["model"]["settings"], **data["settings"]}
    if config["calibration"]["propagate"]:
        posterior = {
            name: {
                "dist": "truncnormal",
                "mean": p["estimate"],
                "sd": max(p["sd"], 1e-9),
                "low": p["prior_low"],
                "high": p["prior_high"],
            }
            for name, p in data["parameters"].items()
        }
        config["uncertainty"]["parameters"] = {**config["uncertainty"]["parameters"], **posterior}
    return config


def write_json(path: str | os.PathLike, obj: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def run_cohort(config: dict, *, store: str, check: str, representation: str, figure: str) -> None:
    """Cohort stage: sample the population into ``store`` and check it against its targets."""
    import cohorts

    spec_path = resolve_path(config["cohort"]["population"])
    spec = cohorts.load_spec(spec_path)
    ds = cohorts.write_cohort(
        spec,
        config["cohort"]["n"],
        store,
        seed=config["trial"]["seed"],
        batch_size=config["cohort"]["batch_size"],
    )
    ds = ds.load()
    cohorts.compare_to_target(spec, ds).to_csv(check, index=False)
    from credibility.tables import representation_table

    representation_table(ds, config["report"]["subgroups"]).to_csv(representation, index=False)
    Path(figure).parent.mkdir(parents=True, exist_ok=True)
    cohorts.plot_check(spec, ds, figure)
    record_stage(
        Path(store).parent,
        "cohort",
        inputs={"population_spec": spec_path},
        outputs={
            "cohort": store,
            "cohort_check": check,
            "representation": representation,
            "figure": figure,
        },
    )
    log.info("cohort: %d patients -> %s", ds.sizes["patient"], store)


def arms_of(config: dict) -> list[dict]:
    """The trial's arms, with a design sweep expanded."""
    return expand_arms(config["arms"], config.get("design_sweep"))


def run_simulate(config: dict, *, cohort: str, store: str, summary: str) -> xr.Dataset:
    """Simulation stage: every patient × arm through the model on Dask into ``store``.

    An interrupted run resumes its store. A store made from another config (Snakemake reruns
    this stage because the cohort, model, arms or settings changed) is started over.
    """
    ds = simulate(
        cohort,
        model_of(config),
        arms_of(config),
        store,
        batch_size=config["simulation"]["batch_size"],
        settings=config["model"]["settings"],
        retries=config["simulation"]["retries"],
        on_mismatch="restart",
    )
    status = ds["status"].values
    run = json.loads(ds.attrs["isct_last_run"])
    write_json(
        summary,
        {
            "store": str(store),
            "model": ds.attrs["model"],
            "model_version": ds.attrs["model_version"],
            "arms": [str(a) for a in ds["arm"].values],
            "patients": int(ds.sizes["patient"]),
            "status_by_arm": {
                str(arm): {
                    name: int((status[i] == code).sum())
                    for name, code in zip(
                        ds["status"].attrs["flag_meanings"].split(),
                        ds["status"].attrs["flag_values"],
                        strict=True,
                    )
                }
                for i, arm in enumerate(ds["arm"].values)
            },
            "last_run": run,
        },
    )
    record_stage(
        Path(store).parent,
        "simulate",
        inputs={"cohort": cohort},
        outputs={"outcomes": store, "summary": summary},
    )
    return ds
