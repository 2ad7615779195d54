"""Uncertainty quantification stage (``workflow/rules/uq.smk``).

The trial's ``uncertainty.parameters`` (with the calibrated parameters' posterior when
``calibration.propagate`` is on) are propagated, through the engine, to every continuous
endpoint of the first ``uncertainty.patients`` patients, per patient and arm, and to the
population shares of the events the model declares (:attr:`models.Model.events`).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ..chain import record_stage
from ..cluster import client_from_env
from ..evaluator import EngineEvaluator, clean_attrs, first_patients, float_endpoints
from ..jsonio import write_json
from ..trial import Trial
from .common import placeholder_figure

__all__ = ["evaluator_for", "model_events", "plot_prediction_intervals", "run_uq"]


def evaluator_for(
    trial: Trial, patients: xr.Dataset, outputs: list[str], runs: str | Path, client: Any
) -> EngineEvaluator:
    """The engine evaluator of the trial's uncertain parameters for ``patients``."""
    return EngineEvaluator(
        patients,
        trial.model,
        trial.arms,
        trial.problem.names,
        outputs,
        runs,
        settings=trial.settings,
        batch_size=trial["simulation"]["design_batch_size"],
        client=client,
    )


def model_events(
    model: Any, outputs: list[str], subset: xr.Dataset
) -> tuple[dict[str, Any], list[str]]:
    """The model's declared events as callables of the UQ outputs, and the outputs they need.

    An event on a continuous output is read from it; an event on a derived output (a class
    computed from continuous outputs, :attr:`models.Model.derived_outputs`) is derived by the
    model from its sources, so it also works on surrogate (PCE) predictions. Events on other
    integer outputs cannot be emulated and are left out.

    Returns
    -------
    events : dict of str to callable
        ``f(y) -> array (n_samples, n_patients, n_arms)`` of 0/1/NaN.
    needed : list of str
        Outputs to add to the UQ outputs.
    """
    floats = set(float_endpoints(model, list(model.outputs)))
    patients = {k: np.asarray(subset[k].values)[None, :, None] for k in model.inputs if k in subset}
    events, needed = {}, []
    for name, event in model.events.items():
        q = event.quantity
        if q in floats:
            sources: tuple[str, ...] = (q,)

            def fn(y, event=event, q=q):
                return event.occurs(y[q])

        elif q in model.derived_outputs and set(model.derived_outputs[q]) <= floats:
            sources = model.derived_outputs[q]

            def fn(y, event=event, q=q, sources=sources):
                derived = model.derive({s: np.asarray(y[s]) for s in sources}, patients)
                return event.occurs(derived[q])

        else:
            continue
        events[name] = fn
        needed += [s for s in sources if s not in outputs and s not in needed]
    return events, needed


def plot_prediction_intervals(ds: xr.Dataset, path: str | Path, *, max_patients: int = 60) -> None:
    """Per-patient prediction intervals of each endpoint and arm (sorted by the mean).

    Drawn on a bare :class:`matplotlib.figure.Figure` (no pyplot state: stages may draw in
    threads of one process at the same time)."""
    from matplotlib.figure import Figure

    outputs = [str(o) for o in ds["output"].values]
    arms = [str(a) for a in ds["arm"].values]
    fig = Figure(figsize=(9, 2.6 * len(outputs)))
    axes = fig.subplots(len(outputs), 1, squeeze=False)
    for ax, out in zip(axes[:, 0], outputs, strict=True):
        for j, arm in enumerate(arms):
            mean = ds["mean"].sel(output=out, arm=arm).values[:max_patients]
            lo = ds["pi_lower"].sel(output=out, arm=arm).values[:max_patients]
            hi = ds["pi_upper"].sel(output=out, arm=arm).values[:max_patients]
            order = np.argsort(mean)
            x = np.arange(len(order)) + (j - (len(arms) - 1) / 2) * 0.3
            ax.errorbar(
                x,
                mean[order],
                yerr=[mean[order] - lo[order], hi[order] - mean[order]],
                fmt="o",
                ms=2.5,
                lw=0.8,
                capsize=0,
                label=arm,
            )
        units = (
            ds.attrs.get("units", {}).get(out, "")
            if isinstance(ds.attrs.get("units"), dict)
            else ""
        )
        ax.set_ylabel(f"{out}\n{units}".strip(), fontsize=8)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    axes[-1, 0].set_xlabel("patients (sorted by predicted mean); bars: 95 % prediction interval")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def run_uq(
    trial: Trial,
    *,
    cohort: str,
    store: str,
    runs: str,
    summary: str,
    figure: str,
    outcomes: str | None = None,
    client: Any = None,
) -> xr.Dataset | None:
    """UQ stage: propagate the ``uncertainty`` parameters to every endpoint, per patient and arm.

    Writes ``store`` (per-patient moments, prediction intervals, PCE leave-one-out error and
    population-level intervals of the model's declared events per arm) and a JSON ``summary``.
    """
    from credibility.uq import propagate

    ucfg = trial["uncertainty"]
    if not ucfg["enabled"] or not ucfg["parameters"]:
        write_json(summary, {"enabled": False, "reason": "no uncertain parameters in the config"})
        placeholder_figure(
            figure, "Uncertainty quantification not run: no `uncertainty.parameters`."
        )
        record_stage(
            Path(store).parent, "uq", inputs={}, outputs={"summary": summary, "figure": figure}
        )
        return None
    with contextlib.ExitStack() as stack:
        if client is None:  # one cluster for every evaluation of the stage
            client = stack.enter_context(client_from_env())
        problem = trial.problem
        subset = first_patients(cohort, ucfg["patients"], outcomes)
        model = trial.model
        endpoints = float_endpoints(model, trial.endpoints)
        events, needed = model_events(model, endpoints, subset)
        endpoints += needed
        arms = trial.arms
        evaluator = evaluator_for(trial, subset, endpoints, runs, client)
        weights = subset["sampling_weight"].values if "sampling_weight" in subset else None
        ds = propagate(
            problem,
            evaluator,
            method=ucfg["method"],
            n=ucfg["n_samples"],
            order=ucfg["order"],
            seed=trial.seed,
            dims=("patient", "arm"),
            events=events or None,
            weights=weights,
        )
        ds = ds.assign_coords(arm=[a["name"] for a in arms], patient=subset["patient"].values)
        ds.attrs["units"] = {e: model.outputs[e].units for e in endpoints}
        clean_attrs(ds).to_zarr(store, mode="w", consolidated=False)
        plot_prediction_intervals(ds, figure)
        result = {
            "enabled": True,
            "method": ucfg["method"],
            "parameters": list(problem.names),
            "patients": int(subset.sizes["patient"]),
            "model_evaluations": evaluator.evaluations,
            "parameter_rows": int(ds.attrs.get("n_evaluations", 0)),
            "store": str(store),
            "endpoints": {},
            "outcomes": {},
        }
        for e in endpoints:
            entry = {}
            for arm in ds["arm"].values:
                sel = ds.sel(output=e, arm=arm)
                width = (sel["pi_upper"] - sel["pi_lower"]).values
                entry[str(arm)] = {
                    "mean_of_patient_means": float(np.nanmean(sel["mean"].values)),
                    "median_pi_width": float(np.nanmedian(width)),
                    "max_loo_error": float(np.nanmax(sel["loo_error"].values))
                    if "loo_error" in ds
                    else None,
                }
            result["endpoints"][e] = entry
        if "outcome" in ds.dims:
            for o in ds["outcome"].values:
                result["outcomes"][str(o)] = {
                    str(arm): {
                        "proportion": float(ds["outcome_proportion"].sel(outcome=o, arm=arm)),
                        "lower": float(ds["outcome_lower"].sel(outcome=o, arm=arm)),
                        "upper": float(ds["outcome_upper"].sel(outcome=o, arm=arm)),
                    }
                    for arm in ds["arm"].values
                }
        write_json(summary, result)
    # the evaluation stores under ``runs`` are this stage's cache, not a link of the chain
    record_stage(
        Path(store).parent,
        "uq",
        inputs={"cohort": cohort, **({"outcomes": outcomes} if outcomes is not None else {})},
        outputs={"uq": store, "summary": summary, "figure": figure},
    )
    return ds
