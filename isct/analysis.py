"""UQ and SA stages: the credibility analyses, with every model run going through the engine.

:class:`EngineEvaluator` is the ``evaluate(X)`` callable that :mod:`credibility.uq` and
:mod:`credibility.sensitivity` drive. It turns parameter rows × patients into one cohort whose
uncertain device parameters are per-row columns and runs it with :func:`isct.engine.simulate`
into a store named by the rows' hash, so an interrupted analysis resumes and a finished one
is not recomputed.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from models import get_model

from .cluster import client_from_env
from .config import model_of, uncertainty_problem
from .engine import simulate
from .errors import ConfigError
from .provenance import record_stage

__all__ = ["EngineEvaluator", "float_endpoints"]

log = logging.getLogger("isct.analysis")


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
    the engine (extra dims: those of the output, e.g. ``lesion``).

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
        batch_size: int = 500,
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

        ds = simulate(
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
        for name in self.outputs:
            values = ds[name].values  # (arm, row x patient[, extra dims])
            values = values.reshape(n_arms, n_rows, k, *values.shape[2:])
            out[name] = np.ascontiguousarray(np.moveaxis(values, 0, 2))
        log.info(
            "evaluated %d parameter rows x %d patients x %d arms -> %s", n_rows, k, n_arms, store
        )
        return out


# --------------------------------------------------------------------------- stages

#: VARC-3 prosthesis-patient mismatch thresholds of indexed EOA, cm2/m2 (shared/reference/tavr.md):
#: (moderate, severe) for BMI < 30 and for BMI >= 30 kg/m2.
PPM_THRESHOLDS = {"bmi_lt_30": (0.85, 0.65), "bmi_ge_30": (0.70, 0.55)}


def _ppm_events(bmi: np.ndarray) -> dict[str, Any]:
    """Binary trial events from indexed EOA, with the BMI-dependent VARC-3 thresholds."""
    obese = np.asarray(bmi) >= 30.0
    moderate = np.where(obese, PPM_THRESHOLDS["bmi_ge_30"][0], PPM_THRESHOLDS["bmi_lt_30"][0])
    severe = np.where(obese, PPM_THRESHOLDS["bmi_ge_30"][1], PPM_THRESHOLDS["bmi_lt_30"][1])

    def at_most(threshold):
        def event(y):
            eoai = y["eoai_cm2_m2"]
            shape = (1, eoai.shape[1]) + (1,) * (eoai.ndim - 2)
            return np.where(np.isfinite(eoai), eoai <= threshold.reshape(shape), np.nan)

        return event

    return {"ppm_moderate_or_severe": at_most(moderate), "ppm_severe": at_most(severe)}


def _subset(cohort: str | Path, k: int, outcomes: str | Path | None = None) -> xr.Dataset:
    """The first ``k`` patients (with ``outcomes``: the first ``k`` simulated ok in every arm)."""
    ds = xr.open_zarr(cohort, consolidated=False)
    if outcomes is None:
        return ds.isel(patient=slice(0, min(k, ds.sizes["patient"]))).load()
    ok = (xr.open_zarr(outcomes, consolidated=False)["status"] == 0).all("arm").values
    return ds.isel(patient=np.flatnonzero(ok)[:k]).load()


def _clean_attrs(ds: xr.Dataset) -> xr.Dataset:
    """zarr attrs must be JSON: turn numpy values and arrays into lists/numbers."""

    def clean(value):
        if isinstance(value, np.ndarray):
            return value.tolist()
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    ds = ds.copy()
    for name, coord in ds.coords.items():  # fixed-width unicode has no zarr v3 spec: use vlen
        if coord.dtype.kind == "U":
            ds = ds.assign_coords({name: coord.astype(object)})
    ds.attrs = {k: clean(v) for k, v in ds.attrs.items()}
    for var in ds.variables.values():
        var.attrs = {k: clean(v) for k, v in var.attrs.items()}
        var.encoding = {}
    return ds


def _placeholder_figure(path: str | Path, text: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 1.5))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_prediction_intervals(ds: xr.Dataset, path: str | Path, *, max_patients: int = 60) -> None:
    """Per-patient prediction intervals of each endpoint and arm (sorted by the mean)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outputs = [str(o) for o in ds["output"].values]
    arms = [str(a) for a in ds["arm"].values]
    fig, axes = plt.subplots(len(outputs), 1, figsize=(9, 2.6 * len(outputs)), squeeze=False)
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
    plt.close(fig)


def _evaluator(config, subset, model, arms, problem, endpoints, runs, client) -> EngineEvaluator:
    return EngineEvaluator(
        subset,
        model,
        arms,
        problem.names,
        endpoints,
        runs,
        settings=config["model"]["settings"],
        batch_size=config["simulation"]["batch_size"],
        client=client,
    )


def run_uq(
    config: dict,
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
    population-level intervals of PPM proportions per arm) and a JSON ``summary``.
    """
    from credibility.uq import propagate

    from .stages import arms_of, write_json

    ucfg = config["uncertainty"]
    if not ucfg["enabled"] or not ucfg["parameters"]:
        write_json(summary, {"enabled": False, "reason": "no uncertain parameters in the config"})
        _placeholder_figure(
            figure, "Uncertainty quantification not run: no `uncertainty.parameters`."
        )
        record_stage(
            Path(store).parent, "uq", inputs={}, outputs={"summary": summary, "figure": figure}
        )
        return None
    with contextlib.ExitStack() as stack:
        if client is None:  # one cluster for every evaluation of the stage
            client = stack.enter_context(client_from_env())
        problem = uncertainty_problem(config)
        subset = _subset(cohort, ucfg["patients"], outcomes)
        model = model_of(config)
        endpoints = float_endpoints(model, config["endpoints"])
        if "eoai_cm2_m2" not in endpoints and "eoai_cm2_m2" in model.outputs:
            endpoints.append("eoai_cm2_m2")
        arms = arms_of(config)
        evaluator = _evaluator(config, subset, model, arms, problem, endpoints, runs, client)
        events = _ppm_events(subset["bmi_kg_m2"].values) if "bmi_kg_m2" in subset else None
        weights = subset["sampling_weight"].values if "sampling_weight" in subset else None
        ds = propagate(
            problem,
            evaluator,
            method=ucfg["method"],
            n=ucfg["n_samples"],
            order=ucfg["order"],
            seed=config["trial"]["seed"],
            dims=("patient", "arm"),
            events=events,
            weights=weights,
        )
        ds = ds.assign_coords(arm=[a["name"] for a in arms], patient=subset["patient"].values)
        ds.attrs["units"] = {e: model.outputs[e].units for e in endpoints}
        _clean_attrs(ds).to_zarr(store, mode="w", consolidated=False)
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


def run_sensitivity(
    config: dict,
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
    from credibility.sensitivity import delta, pawn, plot_convergence, plot_indices, run

    from .stages import arms_of, write_json

    scfg = config["sensitivity"]
    model = model_of(config)
    endpoints = float_endpoints(model, config["endpoints"])
    seed = config["trial"]["seed"]
    result: dict[str, Any] = {"enabled": bool(scfg["enabled"]), "store": str(store)}
    read: dict[str, str] = {}  # what the stage read, for its provenance record
    with contextlib.ExitStack() as stack:
        if client is None and scfg["enabled"]:  # one cluster for the whole stage
            client = stack.enter_context(client_from_env())
        shutil.rmtree(store, ignore_errors=True)  # derived from the run stores; rebuilt whole
        Path(store).parent.mkdir(parents=True, exist_ok=True)
        mode = "w"
        if scfg["enabled"] and config["uncertainty"]["parameters"]:
            problem = uncertainty_problem(config)
            subset = _subset(cohort, scfg["patients"], outcomes)
            read.update(cohort=cohort, outcomes=outcomes)
            arms = arms_of(config)
            evaluator = _evaluator(config, subset, model, arms, problem, endpoints, runs, client)

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
            _clean_attrs(params).to_zarr(store, group="parameters", mode=mode, consolidated=False)
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
                    _placeholder_figure(
                        path, "Parameter sensitivity not run (disabled or no uncertain parameters)."
                    )
        covariates = scfg["covariates"]
        if scfg["enabled"] and covariates:
            coh = xr.open_zarr(cohort, consolidated=False)
            out = xr.open_zarr(outcomes, consolidated=False)
            read.update(cohort=cohort, outcomes=outcomes)
            ok = np.flatnonzero((out["status"] == 0).all("arm").values)
            if ok.size > scfg["covariate_patients"]:
                rng = np.random.default_rng(seed)
                ok = np.sort(rng.choice(ok, size=scfg["covariate_patients"], replace=False))
            X = np.column_stack([coh[c].values[ok] for c in covariates])
            Y = {e: out[e].values[:, ok].T for e in endpoints}  # (n_patients, n_arms)
            result["covariates"] = {"names": covariates, "patients": int(ok.size), "methods": {}}
            for method in scfg["covariate_methods"]:
                analyser = {"delta": delta, "pawn": pawn}[method]
                ds = analyser.analyze(covariates, X, Y, seed=seed, dims=("arm",)).assign_coords(
                    arm=[str(a) for a in out["arm"].values]
                )
                _clean_attrs(ds).to_zarr(
                    store, group=f"covariates_{method}", mode=mode, consolidated=False
                )
                mode = "a"
                index = "delta" if method == "delta" else "PAWN"
                result["covariates"]["methods"][method] = {
                    str(o): {
                        str(a): dict(
                            zip(
                                covariates,
                                map(float, ds[index].sel(output=o, arm=a).values),
                                strict=True,
                            )
                        )
                        for a in ds["arm"].values
                    }
                    for o in ds["output"].values
                }
    write_json(summary, result)
    written = {"summary": summary, "figure": figure}
    if convergence_figure is not None:
        written["convergence_figure"] = convergence_figure
    if Path(store).exists():  # no analysis ran: no store
        written["sa"] = store
    record_stage(Path(store).parent, "sensitivity", inputs=read, outputs=written)
