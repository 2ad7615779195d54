"""Calibrate stage (``workflow/rules/calibrate.smk``): fit a trial's declared calibration parameters to its calibration rows.

Between cohort and simulate. The trial config declares, under ``calibration.parameters``,
model settings to fit and their prior range; the comparator file's ``role: calibration`` rows
are the data. The model runs (through the engine, on Dask, resumable) at a Sobol design of the
parameters for the first ``calibration.patients`` patients of the population spec's sample
(:func:`calibration_patients`: the trial's cohort, unless ``cohort.match`` selected or refitted
it to the enrolled population, which the calibration studies are not); every
calibration row's statistic is computed at its time point exactly as validation computes it
(:func:`credibility.validation.validate`); a PCE emulator and a Bayesian posterior follow
(:mod:`credibility.calibration`). The stage writes:

* ``calibration.json`` — method, the posterior of each parameter (mean, SD, 95 % interval,
  MAP, prior), the settings the later stages use (the posterior means), the rows and the
  comparator file (SHA-256) it used, leave-one-study-out predictive errors and the
  cross-validated comparison of alternative model forms;
* ``calibration_fit.csv`` — calibration rows against the model re-run at the estimate;
* ``calibration_loso.csv`` — leave-one-study-out predictions.

Validation rows are never read here.
"""

from __future__ import annotations

import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..chain import record_stage
from ..cluster import client_from_env
from ..errors import ConfigError
from ..evaluator import EngineEvaluator, first_patients
from ..jsonio import write_json
from ..projection import timepoint_projector
from ..provenance import sha256_file
from ..trial import Trial, thaw
from .common import in_stage_context

__all__ = ["calibration_patients", "run_calibrate"]

log = logging.getLogger("isct.calibrate")


def _outcomes_dataset(
    values: dict[str, np.ndarray], row: int, arms: list[str], patients, model
) -> xr.Dataset:
    """One design row's outcomes as a Dataset (arm, patient[, the output's extra dims])."""
    dims = {k: model.outputs[k].dims if k in model.outputs else () for k in values}
    return xr.Dataset(
        {
            k: (("arm", "patient", *dims[k]), np.ascontiguousarray(np.moveaxis(v[row], 1, 0)))
            for k, v in values.items()
        },
        coords={"arm": arms, "patient": patients},
    )


def _statistics(
    model, X, evaluator, rows, cohort, settings, arms, needed
) -> tuple[np.ndarray, np.ndarray, list[pd.DataFrame]]:
    """Statistic and its Monte Carlo SE of every calibration row at every design point."""
    from credibility.validation import validate

    values = evaluator(X)
    values = {k: values[k] for k in needed}
    Y, se, tables = [], [], []
    for j in range(len(X)):
        ds = _outcomes_dataset(values, j, arms, cohort["patient"].values, model)
        for name in ds.data_vars:
            ds[name].attrs["units"] = model.outputs[name].units if name in model.outputs else "1"
        row_settings = {**settings, **dict(zip(evaluator.parameters, X[j], strict=True))}
        table = validate(
            ds,
            rows,
            cohort,
            role="calibration",
            at_timepoint=timepoint_projector(model, ds, cohort, row_settings),
            size_variable=model.size_output,
        )
        Y.append(table["predicted"].to_numpy(dtype=float))
        se.append(table["u_num"].to_numpy(dtype=float))
        tables.append(table)
    return np.asarray(Y), np.asarray(se), tables


def _calibrate_form(
    problem, X, ev, model, rows, subset, settings, arm_names, needed, u_d, *, refine: int, seed: int
) -> dict[str, Any]:
    """Design, emulator, posterior (with a refinement round) and LOSO of one model form."""
    from credibility.calibration import fit_emulator, leave_one_study_out, posterior

    observed = rows["value"].to_numpy(dtype=float)
    proportion = (rows["statistic"] == "proportion").to_numpy()
    Y, se, _ = _statistics(model, X, ev, rows, subset, settings, arm_names, needed)
    u_obs = np.sqrt(u_d**2 + np.mean(se**2, axis=0))
    emulator = fit_emulator(problem, X, Y, proportion=proportion)
    post = posterior(emulator, observed, u_obs, seed=seed)
    if refine:
        # a second design where the posterior is: systematic resampling of its weighted sample
        positions = (np.arange(refine) + 0.5) / refine
        picks = np.searchsorted(np.cumsum(post.weights), positions)
        X_new = post.samples[np.minimum(picks, len(post.weights) - 1)]
        Y_new, se_new, _ = _statistics(model, X_new, ev, rows, subset, settings, arm_names, needed)
        X, Y, se = np.vstack([X, X_new]), np.vstack([Y, Y_new]), np.vstack([se, se_new])
        u_obs = np.sqrt(u_d**2 + np.mean(se**2, axis=0))
        emulator = fit_emulator(problem, X, Y, proportion=proportion)
        post = posterior(emulator, observed, u_obs, seed=seed)
    loso = leave_one_study_out(emulator, observed, u_obs, rows["study"].tolist(), seed=seed)
    return {"emulator": emulator, "post": post, "u_obs": u_obs, "X": X, "loso": loso}


def _needed_outputs(model, rows: pd.DataFrame) -> list[str]:
    from credibility.comparators import where_variables

    names = {"status", *rows["quantity"]}
    if model.size_output is not None:
        names.add(model.size_output)
    for text in rows["where"]:
        names |= {v for v in where_variables(text) if v in model.outputs}
    return sorted(names)


def calibration_patients(trial: Trial, cohort: str, k: int) -> xr.Dataset:
    """The first ``k`` patients of the population spec's own sample (seed of the trial).

    The calibration rows come from their own studies (registries and trials of all comers),
    not from the population the trial enrols: a cohort that ``cohort.match`` selected or
    refitted to a baseline table is therefore not where they are simulated. A re-weighted
    cohort (method ``weights``) is the spec's sample, so its first ``k`` patients are used;
    generation is prefix-stable, so both give the same patients.
    """
    match = trial["cohort"]["match"]
    if match is None or match.get("method", "weights") == "weights":
        return first_patients(cohort, k)
    import cohorts

    spec = cohorts.load_spec(trial.resolve(trial["cohort"]["population"]))
    ds = cohorts.sample(spec, k, seed=trial.seed)
    ds.attrs["calibration_patients"] = "population spec (the cohort was matched by " + (
        f"{match['method']})"
    )
    return ds


def run_calibrate(
    trial: Trial,
    *,
    cohort: str,
    summary: str,
    fit_table: str,
    loso_table: str,
    runs: str,
    client: Any = None,
) -> dict[str, Any]:
    """Calibrate stage (see the module docstring); returns the ``calibration.json`` content.

    Raises
    ------
    ConfigError
        If parameters are declared but the comparator file has no calibration rows, or a
        parameter is not a setting the model accepts.
    """
    from credibility.calibration import design
    from credibility.comparators import load_comparators, rows_with_role
    from credibility.uq import problem_from_config

    ccfg = trial["calibration"]
    params = ccfg["parameters"]
    Path(summary).parent.mkdir(parents=True, exist_ok=True)
    results_dir = Path(cohort).parent
    written = {"summary": summary, "fit": fit_table, "loso": loso_table}
    if not ccfg["enabled"] or not params:
        result = {
            "enabled": False,
            "reason": "no calibration parameters in the config",
            "settings": {},
        }
        write_json(summary, result)
        pd.DataFrame().to_csv(fit_table, index=False)
        pd.DataFrame().to_csv(loso_table, index=False)
        record_stage(results_dir, "calibrate", inputs={"cohort": cohort}, outputs=written)
        return result
    model = trial.model
    allowed = set(getattr(model, "calibration_parameters", ()))
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ConfigError(
            f"key 'calibration.parameters' names {unknown}, which model {model.name!r} does not "
            f"declare as calibration parameters; allowed: {sorted(allowed)}"
        )
    comp_path = trial["calibration"].get("comparators") or trial["credibility"]["comparators"]
    if not comp_path:
        raise ConfigError(
            "key 'calibration.parameters' is set but 'credibility.comparators' is not"
        )
    path = trial.resolve(comp_path)
    rows = rows_with_role(load_comparators(path), "calibration")
    if rows.empty:
        raise ConfigError(
            f"{path}: no row has role 'calibration', but key 'calibration.parameters' declares "
            f"{sorted(params)}; add calibration rows or remove the parameters"
        )
    problem = problem_from_config(
        {
            "parameters": {
                k: {"dist": "uniform", "low": v["low"], "high": v["high"]}
                for k, v in params.items()
            }
        },
        source="calibration.parameters",
    )
    seed = trial.seed
    X = design(problem, ccfg["design_points"], seed=seed)
    subset = calibration_patients(trial, cohort, ccfg["patients"])
    arms = thaw(ccfg["arms"]) or trial.arms
    arm_names = [a["name"] for a in arms]
    settings = trial.settings
    needed = _needed_outputs(model, rows)
    from credibility.validation import comparator_uncertainty

    u_d = np.array([comparator_uncertainty(r)[0] for r in rows.to_dict("records")])
    forms = {"model": {}, **thaw(ccfg["model_forms"])}
    runs_dir = Path(runs)
    out: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        if client is None:
            client = stack.enter_context(client_from_env())

        def evaluator(overlay: dict[str, Any], name: str) -> EngineEvaluator:
            return EngineEvaluator(
                subset,
                model,
                arms,
                problem.names,
                needed,
                runs_dir / name,
                settings={**settings, **overlay},
                batch_size=trial["simulation"]["design_batch_size"],
                client=client,
            )

        def calibrate(name: str) -> dict[str, Any]:
            overlay = forms[name]
            fitted = _calibrate_form(
                problem,
                X,
                evaluator(overlay, name),
                model,
                rows,
                subset,
                {**settings, **overlay},
                arm_names,
                needed,
                u_d,
                refine=ccfg["refine_points"],
                seed=seed,
            )
            if name == "model":  # the fit at the estimate, while the other forms still run
                fitted["tables"] = _statistics(
                    model,
                    np.asarray([fitted["post"].mean]),
                    evaluator({}, "estimate"),
                    rows,
                    subset,
                    settings,
                    arm_names,
                    needed,
                )[2]
            return fitted

        # The model forms are independent: each runs in a thread of its own, so one form's
        # fitting overlaps the others' model runs and the workers always have tasks queued
        # (one after another, the workers waited through every fit and every call's last task).
        # Each form's result depends on its own design and seed only, not on this order.
        with ThreadPoolExecutor(len(forms), thread_name_prefix="isct-calibrate") as pool:
            fits = dict(zip(forms, pool.map(in_stage_context(calibrate), forms), strict=True))
        cv: dict[str, dict[str, float]] = {}
        for name, fitted in fits.items():
            loso = fitted["loso"]
            loso.insert(1, "id", rows["id"].to_numpy()[loso["row"].to_numpy(dtype=int)])
            rel = (loso["error"] / loso["observed"].where(loso["observed"] != 0)).abs()
            cv[name] = {
                "rms_z": float(np.sqrt(np.mean(loso["z"] ** 2))) if len(loso) else float("nan"),
                "mean_abs_error": float(loso["error"].abs().mean()) if len(loso) else float("nan"),
                "mean_abs_rel_error_pct": float(100 * rel.mean()) if len(loso) else float("nan"),
            }
            if name == "model":
                loso.to_csv(loso_table, index=False)
                out.update(fitted)
        post = out["post"]
        estimate = dict(zip(problem.names, (float(v) for v in post.mean), strict=True))
        tables = out["tables"]
    fit = tables[0]
    fit.insert(
        fit.columns.get_loc("predicted") + 1, "emulated", out["emulator"](post.mean[None, :])[0]
    )
    fit.to_csv(fit_table, index=False)
    table = post.table()
    best = min(cv, key=lambda k: cv[k]["rms_z"])
    result = {
        "enabled": True,
        "method": "Bayesian calibration on a PCE emulator (uniform prior, Gaussian likelihood, "
        "adaptive importance sampling); Kennedy & O'Hagan 2001, Marzouk et al. 2007",
        "comparators": {
            "path": comp_path,
            "sha256": sha256_file(path),
            "rows": rows["id"].tolist(),
            "studies": sorted(set(rows["study"])),
        },
        "patients": int(subset.sizes["patient"]),
        "patients_from": subset.attrs.get("calibration_patients", "cohort"),
        "design_points": int(len(out["X"])),
        "model_evaluations": int((len(X) + ccfg["refine_points"]) * len(forms) + 1)
        * int(subset.sizes["patient"])
        * len(arms),
        "effective_sample_size": post.ess,
        "emulator": {
            "order": int(out["emulator"].pce.order),
            "loo_error": dict(zip(rows["id"], map(float, out["emulator"].error), strict=True)),
        },
        "parameters": {
            r["parameter"]: {
                "estimate": float(r["estimate"]),
                "sd": float(r["sd"]),
                "ci_low": float(r["ci_low"]),
                "ci_high": float(r["ci_high"]),
                "map": float(r["map"]),
                "prior_low": float(params[r["parameter"]]["low"]),
                "prior_high": float(params[r["parameter"]]["high"]),
                "description": params[r["parameter"]].get("description", ""),
            }
            for r in table.to_dict("records")
        },
        "settings": estimate,
        "fit": {
            "rows": int(len(fit)),
            "consistent": int((fit["verdict"] == "consistent").sum()),
            "max_abs_error": float(fit["E"].abs().max()),
        },
        "leave_one_study_out": cv["model"],
        "model_forms": {
            "forms": {k: {"settings": forms[k], **v} for k, v in cv.items()},
            "best": best,
            "model_to_best_rms_z_ratio": cv["model"]["rms_z"] / cv[best]["rms_z"]
            if cv[best]["rms_z"] > 0
            else float("nan"),
        },
    }
    write_json(summary, result)
    record_stage(
        results_dir, "calibrate", inputs={"cohort": cohort, "comparators": path}, outputs=written
    )
    log.info(
        "calibration: %s; LOSO rms z %.2f; model forms %s",
        ", ".join(f"{k} = {v:.4g}" for k, v in estimate.items()),
        cv["model"]["rms_z"],
        {k: round(v["rms_z"], 2) for k, v in cv.items()},
    )
    return result
