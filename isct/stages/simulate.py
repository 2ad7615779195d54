"""Simulation stage (``workflow/rules/simulate.smk``): every patient × arm through the model."""

from __future__ import annotations

import json
from pathlib import Path

import xarray as xr

from ..chain import record_stage
from ..engine import simulate
from ..jsonio import write_json
from ..trial import Trial

__all__ = ["run_simulate"]


def run_simulate(
    trial: Trial,
    *,
    cohort: str,
    store: str,
    summary: str,
    sized_cohort: str | None = None,
    sizing: str | None = None,
) -> xr.Dataset:
    """Run every patient × arm through the model on Dask into ``store``.

    An interrupted run resumes its store. A store made from another config (Snakemake reruns
    this stage because the cohort, model, arms or settings changed) is started over.
    ``summary`` gets the status counts per arm and the engine's record of the run.

    A sized trial (config ``sizing``): ``cohort`` is the pool of ``n_max`` patients; waves of
    it run until the target is met (:mod:`isct.sizing`, record in ``sizing``), and the first
    ``n_stop`` patients become the trial's cohort (``sized_cohort``) and outcomes (``store``).
    """
    outputs = {"outcomes": store, "summary": summary}
    if trial["sizing"]:
        if sized_cohort is None or sizing is None:
            raise ValueError("a sized trial needs sized_cohort and sizing paths")
        from ..sizing import run_sized

        waves = str(Path(sizing).parent / "waves.zarr")
        run_sized(
            trial,
            pool=cohort,
            waves=waves,
            cohort_out=sized_cohort,
            outcomes_out=store,
            summary=sizing,
        )
        outputs.update(cohort=sized_cohort, sizing=sizing)
        ds = xr.open_zarr(store, consolidated=False)  # written whole by run_sized
    else:
        ds = simulate(
            cohort,
            trial.model,
            trial.arms,
            store,
            batch_size=trial["simulation"]["batch_size"],
            settings=trial.settings,
            retries=trial["simulation"]["retries"],
            on_mismatch="restart",
        )
    status = ds["status"].values
    flags = dict(
        zip(
            ds["status"].attrs["flag_meanings"].split(),
            ds["status"].attrs["flag_values"],
            strict=True,
        )
    )
    write_json(
        summary,
        {
            "store": str(store),
            "model": ds.attrs["model"],
            "model_version": ds.attrs["model_version"],
            "arms": [str(a) for a in ds["arm"].values],
            "patients": int(ds.sizes["patient"]),
            "status_by_arm": {
                str(arm): {name: int((status[i] == code).sum()) for name, code in flags.items()}
                for i, arm in enumerate(ds["arm"].values)
            },
            "last_run": json.loads(ds.attrs["isct_last_run"]),
        },
    )
    record_stage(
        Path(store).parent,
        "simulate",
        inputs={"cohort": cohort},
        outputs=outputs,
    )
    return ds
