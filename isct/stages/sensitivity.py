"""Sensitivity analysis stage (``workflow/rules/sensitivity.smk``).

Indices of the cohort-mean endpoints to the uncertain parameters (every model run through
the engine) and given-data indices of each endpoint to the correlated cohort covariates.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ..chain import record_stage
from ..cluster import client_from_env
from ..evaluator import clean_attrs, first_patients, float_endpoints
from ..jsonio import write_json
from ..trial import Trial
from .common import in_stage_context, placeholder_figure
from .uq import evaluator_for

__all__ = ["run_sensitivity"]

log = logging.getLogger("isct.sensitivity")


def given_data_indices(method: str, covariates, X, Y, seed: int) -> xr.Dataset:
    """Given-data indices (``delta`` or ``pawn``) of outputs ``Y`` to the cohort covariates,
    the bootstrap seeded with the trial's seed for each endpoint. They run in the stage's own
    process: as Dask tasks of the stage's cluster they took twice as long in the workflow
    (2026-11-30: 23 s against 10 s for the default trial's 3 endpoints x 2 methods)."""
    from credibility.sensitivity import delta, pawn

    analyser = {"delta": delta, "pawn": pawn}[method]
    t0, c0 = time.perf_counter(), time.process_time()
    ds = analyser.analyze(covariates, X, Y, seed=seed, dims=("arm",))
    log.info(
        "%s of %s: %.1f s (CPU %.1f s)",
        method,
        ", ".join(Y),
        time.perf_counter() - t0,
        time.process_time() - c0,
    )
    return ds


def _covariate_indices(
    scfg: Any, cohort: str, outcomes: str, endpoints: list[str], seed: int
) -> tuple[dict[str, xr.Dataset], dict[str, Any]]:
    """Given-data indices of each endpoint to the cohort covariates, by each covariate method:
    the datasets (``output, arm, parameter``) and their summary for ``sa.json``."""
    covariates = scfg["covariates"]
    log.info("given-data indices to %d covariates", len(covariates))
    coh = xr.open_zarr(cohort, consolidated=False)
    out = xr.open_zarr(outcomes, consolidated=False)
    ok = np.flatnonzero((out["status"] == 0).all("arm").values)
    if ok.size > scfg["covariate_patients"]:
        rng = np.random.default_rng(seed)
        ok = np.sort(rng.choice(ok, size=scfg["covariate_patients"], replace=False))
    X = np.column_stack([coh[c].values[ok] for c in covariates])
    Y = {e: out[e].values[:, ok].T for e in endpoints}  # (n_patients, n_arms)
    summary: dict[str, Any] = {"names": covariates, "patients": int(ok.size), "methods": {}}
    datasets = {}
    for method in scfg["covariate_methods"]:
        parts = [given_data_indices(method, covariates, X, {e: Y[e]}, seed) for e in endpoints]
        log.info("given-data %s indices of %d endpoints", method, len(endpoints))
        ds = xr.concat(parts, dim="output").assign_coords(arm=[str(a) for a in out["arm"].values])
        datasets[method] = ds
        index = "delta" if method == "delta" else "PAWN"
        summary["methods"][method] = {
            str(o): {
                str(a): dict(
                    zip(covariates, map(float, ds[index].sel(output=o, arm=a).values), strict=True)
                )
                for a in ds["arm"].values
            }
            for o in ds["output"].values
        }
    return datasets, summary


def run_sensitivity(
    trial: Trial,
    *,
    cohort: str,
    outcomes: str,
    store: str,
    runs: str,
    summary: str,
    figure: str,
    convergence_figure: str | None = None,
    client: Any = None,
) -> None:
    """SA stage: indices of the cohort-mean endpoints to the uncertain parameters (through the
    engine) and given-data indices of each endpoint to the correlated cohort covariates."""
    from credibility.sensitivity import plot_convergence, plot_indices, run

    scfg = trial["sensitivity"]
    endpoints = float_endpoints(trial.model, trial.endpoints)
    seed = trial.seed
    result: dict[str, Any] = {"enabled": bool(scfg["enabled"]), "store": str(store)}
    read: dict[str, str] = {}  # what the stage read, for its provenance record
    with contextlib.ExitStack() as stack:
        if client is None and scfg["enabled"]:  # one cluster for the whole stage
            client = stack.enter_context(client_from_env())
        # The given-data indices need no model run: computed in a thread of their own while
        # the workers run the parameter design, instead of after it with the workers idle.
        covariate_job = None
        if scfg["enabled"] and scfg["covariates"]:
            pool = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="isct-sa"))
            covariate_job = pool.submit(
                in_stage_context(_covariate_indices), scfg, cohort, outcomes, endpoints, seed
            )
        shutil.rmtree(store, ignore_errors=True)  # derived from the run stores; rebuilt whole
        Path(store).parent.mkdir(parents=True, exist_ok=True)
        mode = "w"
        if scfg["enabled"] and trial["uncertainty"]["parameters"]:
            problem = trial.problem
            subset = first_patients(cohort, scfg["patients"], outcomes)
            read.update(cohort=cohort, outcomes=outcomes)
            arms = trial.arms
            evaluator = evaluator_for(trial, subset, endpoints, runs, client)

            def cohort_mean(X):
                return {k: np.nanmean(v, axis=1) for k, v in evaluator(X).items()}

            params = run(
                problem,
                cohort_mean,
                method=scfg["method"],
                n=scfg["n"],
                seed=seed,
                ci_target=scfg["ci_target"],
                n_max=scfg["n_max"],
                dims=("arm",),
            ).assign_coords(arm=[a["name"] for a in arms])
            clean_attrs(params).to_zarr(store, group="parameters", mode=mode, consolidated=False)
            mode = "a"
            plot_indices(params.isel(arm=0), figure)
            if convergence_figure is not None:
                plot_convergence(params.isel(arm=0), convergence_figure)
            watched = [i for i in ("S1", "ST", "mu_star", "Sh") if i in params]
            result["parameters"] = {
                "method": scfg["method"],
                "names": list(problem.names),
                "patients": int(subset.sizes["patient"]),
                "model_evaluations": evaluator.evaluations,
                "converged": int(params.attrs.get("converged", 0)),
                "ci_target": scfg["ci_target"],
                "n_steps": [int(v) for v in params["n"].values]
                if "n" in params.coords
                else [scfg["n"]],
                "indices": {
                    idx: {
                        str(o): {
                            str(a): dict(
                                zip(
                                    map(str, params["parameter"].values),
                                    map(float, params[idx].sel(output=o, arm=a).values),
                                    strict=True,
                                )
                            )
                            for a in params["arm"].values
                        }
                        for o in params["output"].values
                    }
                    for idx in watched
                },
            }
        else:
            for path in (figure, convergence_figure):
                if path is not None:
                    placeholder_figure(
                        path, "Parameter sensitivity not run (disabled or no uncertain parameters)."
                    )
        if covariate_job is not None:
            datasets, result["covariates"] = covariate_job.result()
            read.update(cohort=cohort, outcomes=outcomes)
            for method, ds in datasets.items():
                clean_attrs(ds).to_zarr(
                    store, group=f"covariates_{method}", mode=mode, consolidated=False
                )
                mode = "a"
    write_json(summary, result)
    written = {"summary": summary, "figure": figure}
    if convergence_figure is not None:
        written["convergence_figure"] = convergence_figure
    if Path(store).exists():  # no analysis ran: no store
        written["sa"] = store
    record_stage(Path(store).parent, "sensitivity", inputs=read, outputs=written)
