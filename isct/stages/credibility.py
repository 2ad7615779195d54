"""Credibility stage (``workflow/rules/credibility.smk``): evidence computed from the run.

The stage checks the stage chain up to itself (every file it and the simulate stage read is
the one its writer recorded), then computes code verification (the model's own check of its
numerics), calculation verification (a three-level time-step study → GCI), validation
against the comparator rows whose role is ``validation`` (each at its time point), and the
applicability of the comparator populations to the trial's cohort.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..chain import check_stage_chain, record_stage
from ..jsonio import write_json
from ..projection import timepoint_projector
from ..trial import Trial

__all__ = ["CREDIBILITY_UPSTREAM", "run_credibility"]

log = logging.getLogger("isct.credibility")

#: Stages whose records the credibility stage checks (its upstream and itself); the UQ and
#: SA stages may still be running beside it.
CREDIBILITY_UPSTREAM = ("cohort", "calibrate", "simulate", "credibility")


def _verification(trial: Trial, cohort: xr.Dataset) -> tuple[dict[str, Any], pd.DataFrame | None]:
    """Calculation verification: three step sizes per arm → GCI per endpoint and patient.

    The GCI follows Celik et al. (2008) for the observed order, with the factor-of-safety rule
    of Oberkampf & Roy (2010) against the model's formal order: Celik's formula alone blows up
    where event-limited or non-asymptotic data give a tiny apparent order.
    """
    from credibility.verification import gci_oberkampf_roy

    model = trial.model
    vcfg = trial["credibility"]["verification"]
    k = min(vcfg["patients"], cohort.sizes["patient"])
    patients = {name: cohort[name].values[:k] for name in model.inputs}
    settings = trial.settings
    if model.formal_order is None or model.step_setting is None:
        return {"note": f"model {model.name!r} declares no discretisation to verify"}, None
    key, default = model.step_setting
    dt = settings.get(key, default)
    r = float(vcfg["refinement"])
    dts = [float(dt) * r * r, float(dt) * r, float(dt)]
    frames, per_arm = [], {}
    for arm in trial.arms:
        study = model.time_step_study(patients, arm["device"], dts, settings)
        if study is None:
            return {"note": f"model {model.name!r} offers no time-step study"}, None
        ok = np.asarray(study["converged"]).all(axis=0)
        for e, levels in study["endpoints"].items():  # every endpoint the step can change
            f3, f2, f1 = (np.asarray(level)[ok] for level in levels)
            result = gci_oberkampf_roy(f1, f2, f3, r, p_formal=model.formal_order)
            frame = result.to_frame(
                index=[f"{arm['name']}/{e}/patient{i}" for i in np.flatnonzero(ok)]
            )
            frame["arm"], frame["endpoint"] = arm["name"], e
            frames.append(frame)
        per_arm[arm["name"]] = int(ok.sum())
    table = pd.concat(frames)
    summary_rows = (
        table.groupby(["arm", "endpoint"])["gci_fine_pct"].agg(["median", "max"]).reset_index()
    )
    # The goal is on the quantities of interest (the trial's endpoints); event times are
    # resolved only to one step and are reported, not graded.
    qoi = [e for e in trial.endpoints if e in set(table["endpoint"])]
    graded = table[table["endpoint"].isin(qoi)] if qoi else table
    gci_max = float(np.nanmax(graded["gci_fine_pct"])) if len(graded) else float("nan")
    evidence = {
        "dt_s": dts,
        "refinement": r,
        "formal_order": model.formal_order,
        "safety_factor": "1.25 in the asymptotic range, else 3 (Oberkampf & Roy 2010)",
        "patients_per_arm": per_arm,
        "graded_endpoints": qoi,
        "gci_max_pct": gci_max,
        "gci_median_pct": float(np.nanmedian(graded["gci_fine_pct"]))
        if len(graded)
        else float("nan"),
        "observed_order_median": float(np.nanmedian(graded["p"])) if len(graded) else float("nan"),
        "monotonic_fraction": float(
            graded["convergence"].isin(["monotonic", "grid_independent"]).mean()
        ),
        "method": "Grid Convergence Index (Roache 1998); observed order by Celik et al. 2008, "
        "doi:10.1115/1.2960953; factor of safety by Oberkampf & Roy 2010, section 8.7.2",
    }
    # per arm and endpoint; written to evidence/gci.csv (not repeated in the evidence JSON)
    gci_table = summary_rows.rename(columns={"median": "gci_median_pct", "max": "gci_fine_pct"})
    return evidence, gci_table


def run_credibility(
    trial: Trial, *, cohort: str, outcomes: str, evidence: str, validation: str
) -> dict[str, Any]:
    """Credibility stage: verification, validation and applicability evidence."""
    from credibility.applicability import applicability
    from credibility.comparators import load_comparators, load_populations
    from credibility.validation import validate

    out_dir = Path(evidence).parent
    out_dir.mkdir(parents=True, exist_ok=True)
    res = Path(outcomes).parent
    cred = trial["credibility"]
    read: dict[str, Any] = {"cohort": cohort, "outcomes": outcomes}
    calibration_file = res / "calibration" / "calibration.json"
    if calibration_file.is_file():
        read["calibration"] = calibration_file
    for key in ("comparators", "comparator_populations"):
        if cred[key]:
            read[key] = trial.resolve(cred[key])
    # hash what this stage reads as it reads it, then check every link up to here
    reads = record_stage(res, "credibility", inputs=read, outputs={})["inputs"]
    chain = check_stage_chain(res, stages=CREDIBILITY_UPSTREAM)
    for broken in chain:
        log.warning("stage chain: %s", broken)
    coh = xr.open_zarr(cohort, consolidated=False).load()
    outs = xr.open_zarr(outcomes, consolidated=False).load()
    model = trial.model
    result: dict[str, Any] = {
        "stage_chain": {
            "stages": list(CREDIBILITY_UPSTREAM),
            "mismatches": [m.to_dict() for m in chain],
        }
    }
    code = model.code_verification()
    if code is not None:
        result["code_verification"] = code
    verification, gci_table = _verification(trial, coh)
    result["verification"] = verification
    written: dict[str, Any] = {"validation": validation}
    if gci_table is not None:
        gci_table.to_csv(out_dir / "gci.csv", index=False)
        written["gci"] = out_dir / "gci.csv"
    if cred["comparators"]:
        comparators = load_comparators(read["comparators"])
        # validation rows only, each at its own time point (or excluded with the reason)
        table = validate(
            outs,
            comparators,
            coh,
            role="validation",
            at_timepoint=timepoint_projector(model, outs, coh, trial.settings),
            size_variable=model.size_output,
        )
        table.to_csv(validation, index=False)
        result["validation_table"] = str(validation)
        if "comparator_populations" in read:
            frames = []
            for name, population in load_populations(read["comparator_populations"]).items():
                frame = applicability(coh, population, on_missing="skip")
                frame.insert(0, "population", name)
                frames.append(frame)
            pd.concat(frames).to_csv(out_dir / "applicability.csv", index=False)
            written["applicability"] = out_dir / "applicability.csv"
    else:
        pd.DataFrame().to_csv(validation, index=False)
    write_json(evidence, result)
    record_stage(res, "credibility", inputs=reads, outputs={"evidence": evidence, **written})
    return result
