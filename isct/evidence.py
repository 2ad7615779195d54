"""Credibility and report stages: evidence computed from the run, then the report.

The credibility stage checks the stage chain up to itself (every file it and the simulate
stage read is the one its writer recorded), then computes verification (code verification of
the model's numerics and a three-level time-step study → GCI), validation against the
comparator file, and the applicability of the comparator populations. The report stage
checks the whole stage chain again (software quality assurance evidence), writes the
manifest, has a separate ``isct verify`` process re-simulate sampled patients from the
manifest alone (use-error evidence), assesses every V&V 40 factor of the plan and renders the
report.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from models import load_card

from .config import REPO_ROOT, model_of, resolve_path
from .provenance import check_stage_chain, record_stage, write_manifest
from .stages import arms_of, write_json

__all__ = ["reproducibility_evidence", "run_credibility", "run_report"]

log = logging.getLogger("isct.evidence")

#: Stages whose records the credibility stage checks (its upstream and itself); the UQ and
#: SA stages may still be running beside it.
CREDIBILITY_UPSTREAM = ("cohort", "calibrate", "simulate", "credibility")
#: Upper bound on the separate re-simulation process (external solvers can be slow).
VERIFY_TIMEOUT_S = 3600
#: Characters of the verify process's stderr kept in the evidence when it fails.
STDERR_TAIL = 2000
#: Rows of re-simulation differences kept in the evidence (``n_differences`` counts them all).
MAX_DIFFERENCES_SHOWN = 100


def _verification(config: dict, cohort: xr.Dataset) -> tuple[dict[str, Any], pd.DataFrame | None]:
    """Calculation verification: three step sizes per arm → GCI per endpoint and patient.

    The GCI follows Celik et al. (2008) for the observed order, with the factor-of-safety rule
    of Oberkampf & Roy (2010) against the model's formal order: Celik's formula alone blows up
    where event-limited or non-asymptotic data give a tiny apparent order.
    """
    from credibility.verification import gci_oberkampf_roy

    model = model_of(config)
    vcfg = config["credibility"]["verification"]
    k = min(vcfg["patients"], cohort.sizes["patient"])
    patients = {name: cohort[name].values[:k] for name in model.inputs}
    settings = config["model"]["settings"]
    if model.formal_order is None or model.step_setting is None:
        return {"note": f"model {model.name!r} declares no discretisation to verify"}, None
    key, default = model.step_setting
    dt = settings.get(key, default)
    r = float(vcfg["refinement"])
    dts = [float(dt) * r * r, float(dt) * r, float(dt)]
    frames, per_arm = [], {}
    for arm in arms_of(config):
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
    # The goal is on the quantities of interest (the trial's endpoints); event times such as
    # ejection_time_s are resolved only to one step and are reported, not graded.
    qoi = [e for e in config["endpoints"] if e in set(table["endpoint"])]
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
    config: dict, *, cohort: str, outcomes: str, evidence: str, validation: str
) -> dict[str, Any]:
    """Credibility stage: verification, validation and applicability evidence."""
    from credibility.applicability import applicability
    from credibility.comparators import load_comparators, load_populations
    from credibility.validation import validate

    from .calibrate import size_output
    from .projection import timepoint_projector

    out_dir = Path(evidence).parent
    out_dir.mkdir(parents=True, exist_ok=True)
    res = Path(outcomes).parent
    cred = config["credibility"]
    read: dict[str, Any] = {"cohort": cohort, "outcomes": outcomes}
    calibration_file = res / "calibration" / "calibration.json"
    if calibration_file.is_file():
        read["calibration"] = calibration_file
    if cred["comparators"]:
        comparators_file = resolve_path(cred["comparators"])
        read["comparators"] = comparators_file
        populations_file = comparators_file.with_name(comparators_file.stem + "_populations.csv")
        if populations_file.is_file():
            read["comparator_populations"] = populations_file
    # hash what this stage reads as it reads it, then check every link up to here
    reads = record_stage(res, "credibility", inputs=read, outputs={})["inputs"]
    chain = check_stage_chain(res, stages=CREDIBILITY_UPSTREAM)
    for broken in chain:
        log.warning("stage chain: %s", broken)
    coh = xr.open_zarr(cohort, consolidated=False).load()
    outs = xr.open_zarr(outcomes, consolidated=False).load()
    model = model_of(config)
    result: dict[str, Any] = {
        "stage_chain": {
            "stages": list(CREDIBILITY_UPSTREAM),
            "mismatches": [m.to_dict() for m in chain],
        }
    }
    code = model.code_verification()
    if code is not None:
        result["code_verification"] = code
    verification, gci_table = _verification(config, coh)
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
            at_timepoint=timepoint_projector(model, outs, coh, config["model"]["settings"]),
            size_variable=size_output(model),
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


def _model_card_path(config: dict) -> Path | None:
    """The model card the config names, else the model package's own ``card.yaml``."""
    card = config["model"].get("card")
    if card:
        return resolve_path(card)
    default = REPO_ROOT / "models" / config["model"]["name"] / "card.yaml"
    return default if default.is_file() else None


def _read_csv(path: Path) -> pd.DataFrame | None:
    if not path.is_file() or path.stat().st_size == 0:
        return None
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return None


def _open(path: Path, group: str | None = None) -> xr.Dataset | None:
    try:
        return xr.open_zarr(path, group=group, consolidated=False).load()
    except (FileNotFoundError, KeyError, OSError, ValueError):
        return None


def _rerun_failed(command: str, returncode: int | None, error: str) -> dict[str, Any]:
    return {
        "resimulation_match": False,
        "method": command,
        "returncode": returncode,
        "error": error[-STDERR_TAIL:] or "no output",
        "patients_checked": 0,
        "n_differences": None,
    }


def reproducibility_evidence(
    results: str | os.PathLike, *, sample: int | None, seed: int
) -> dict[str, Any]:
    """Re-simulate patients in a separate process that knows only the results folder.

    Runs ``python -m isct verify <results> --sample K --seed S --json FILE`` (``--all`` for
    ``sample=None``) with an environment of ``PATH`` and ``PYTHONPATH`` alone, in the
    current working directory (where ``results/`` lies). That process reads the manifest,
    the trial config the manifest names and the stores, re-simulates the chosen patients and
    compares them bit for bit with the stored outcomes (:func:`isct.verify.verify`).

    Parameters
    ----------
    results : str or path
        ``results/<trial>`` with its ``manifest.json`` already written.
    sample : int or None
        Patients to re-simulate in every arm; None for all.
    seed : int
        Seed of the choice of patients.

    Returns
    -------
    dict
        ``resimulation_match`` (bool: the process ran and every value matched),
        ``method`` (the command), ``returncode``, ``patients_checked``, ``arms_checked``,
        ``n_differences``, ``manifest_mismatches``, ``refused`` (why the installed model was
        not run), ``error`` (None, or the tail of the process's stderr when it failed),
        ``patients``, ``arms`` and ``differences`` (rows: patient, arm, output, stored,
        resimulated). A failed process gives ``resimulation_match`` False, never an exception.
    """
    which = ["--all"] if sample is None else ["--sample", str(sample)]
    command = (
        f"python -m isct verify {results} {' '.join(which)} --seed {seed} --json <file> "
        "(separate process; environment: PATH and PYTHONPATH only)"
    )
    env = {k: os.environ[k] for k in ("PATH", "PYTHONPATH") if k in os.environ}
    with tempfile.TemporaryDirectory(prefix="isct-verify-") as tmp:
        out = Path(tmp) / "verify.json"
        argv = [sys.executable, "-m", "isct", "verify", str(results), *which]
        argv += ["--seed", str(seed), "--json", str(out)]
        try:
            proc = subprocess.run(
                argv, env=env, capture_output=True, text=True, timeout=VERIFY_TIMEOUT_S
            )
        except subprocess.TimeoutExpired as exc:
            tail = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
            return _rerun_failed(command, None, f"timed out after {VERIFY_TIMEOUT_S} s\n{tail}")
        # exit 1 means "differences found": the JSON says which
        if proc.returncode not in (0, 1) or not out.is_file():
            return _rerun_failed(command, proc.returncode, proc.stderr or proc.stdout)
        try:
            checked = json.loads(out.read_text())
        except json.JSONDecodeError as exc:
            return _rerun_failed(command, proc.returncode, f"{out}: not valid JSON: {exc}")
    resim = checked["resimulation"] or {}
    differences = resim.get("differences", [])
    return {
        "resimulation_match": bool(resim.get("match", False)),
        "method": command,
        "returncode": proc.returncode,
        "error": None,
        "patients_checked": len(resim.get("patients", [])),
        "arms_checked": len(resim.get("arms", [])),
        "n_differences": len(differences),
        "manifest_mismatches": len(checked["hash_mismatches"]),
        "refused": resim.get("refused"),
        "patients": resim.get("patients", []),
        "arms": resim.get("arms", []),
        "differences": differences[:MAX_DIFFERENCES_SHOWN],
    }


def run_report(
    config: dict, *, results: str, html: str, manifest: str, config_path: str | None = None
) -> Path:
    """Report stage: stage chain and re-run evidence, V&V 40 assessment, manifest and report.

    The stage hashes what it reads (``provenance/report.json``) and checks the whole stage
    chain before it writes the manifest; the number of broken links is the evidence
    ``provenance.stage_chain_mismatches``. With the manifest written, a separate process
    re-simulates ``credibility.resimulation.patients`` patients
    (:func:`reproducibility_evidence`). The manifest is written again at the end so that it
    holds the report.
    """
    from credibility.evidence import collect_evidence
    from credibility.plan import assess, load_plan
    from credibility.report import build_context, render_report

    res = Path(results)
    ev_dir = res / "evidence"
    cred = config["credibility"]
    model = model_of(config)
    figures = {
        "cohort_check": res / "figures" / "cohort_check.png",
        "uq_intervals": res / "figures" / "uq_intervals.png",
        "sa_indices": res / "figures" / "sa_indices.png",
        "sa_convergence": res / "figures" / "sa_convergence.png",
    }
    card_path = _model_card_path(config)
    plan_path = resolve_path(cred["plan"]) if cred["plan"] else None
    candidates = {
        "evidence": ev_dir / "evidence.json",
        "validation": ev_dir / "validation.csv",
        "applicability": ev_dir / "applicability.csv",
        "gci": ev_dir / "gci.csv",
        "cohort_check": res / "cohort_check.csv",
        "calibration": res / "calibration" / "calibration.json",
        "calibration_fit": res / "calibration" / "calibration_fit.csv",
        "calibration_loso": res / "calibration" / "calibration_loso.csv",
        "cohort": res / "cohort.zarr",
        "outcomes": res / "outcomes.zarr",
        "uq": res / "uq.zarr",
        "sa": res / "sa.zarr",
        **{f"figure_{k}": v for k, v in figures.items()},
        "model_card": card_path,
        "plan": plan_path,
    }
    # hash what this stage reads as it reads it, then check every link of the chain
    read = {k: p for k, p in candidates.items() if p is not None and Path(p).exists()}
    reads = record_stage(res, "report", inputs=read, outputs={})["inputs"]
    chain = check_stage_chain(res)
    for broken in chain:
        log.warning("stage chain: %s", broken)
    hashed = {res.resolve() / e["path"]: e for e in reads.values()}

    stage_evidence = json.loads((ev_dir / "evidence.json").read_text())
    calibration_file = res / "calibration" / "calibration.json"
    calibration = json.loads(calibration_file.read_text()) if calibration_file.is_file() else None
    cohort = _open(res / "cohort.zarr")
    outcomes = _open(res / "outcomes.zarr")
    uq = _open(res / "uq.zarr")
    sa = _open(res / "sa.zarr", group="parameters")
    card = load_card(card_path, model) if card_path is not None else None

    inputs: dict[str, Path] = {
        "population_spec": resolve_path(config["cohort"]["population"]),
        "model_source": Path(__import__(type(model).__module__, fromlist=["_"]).__file__).parent,
    }
    for key in ("plan", "comparators"):
        if cred[key]:
            inputs[key] = resolve_path(cred[key])
    if config["model"].get("card"):
        inputs["model_card"] = resolve_path(config["model"]["card"])
    outputs = {
        p.name: p
        for p in sorted(res.iterdir())
        if p.name not in ("manifest.json", "logs", "benchmarks", "runs")
        and not p.name.endswith("_runs.zarr")
    }
    seeds = {"trial_seed": config["trial"]["seed"]}
    root = res.parent.parent
    cfg_file = Path(config_path) if config_path else REPO_ROOT / "config" / "config.yaml"
    manifest_args = {"config_path": cfg_file, "inputs": inputs, "seeds": seeds, "root": root}
    write_manifest(res, outputs=outputs, hashed=hashed, **manifest_args)
    rerun = reproducibility_evidence(
        res, sample=cred["resimulation"]["patients"], seed=config["trial"]["seed"]
    )

    validation = _read_csv(ev_dir / "validation.csv")
    applic = _read_csv(ev_dir / "applicability.csv")
    gci_table = _read_csv(ev_dir / "gci.csv")
    verification = dict(stage_evidence.get("verification", {}))
    evidence = collect_evidence(
        verification={k: v for k, v in verification.items() if not isinstance(v, dict | list)},
        code_verification=stage_evidence.get("code_verification"),
        validation=validation,
        applicability=applic,
        outcomes=outcomes,
        model_card=card,
        uq=uq,
        stage_chain=[m.to_dict() for m in chain],
        reproducibility=rerun,
        calibration=calibration,
        quantities_of_interest=config["endpoints"],
    )
    plan = load_plan(plan_path) if plan_path is not None else None
    if plan is not None:  # show the plan as the config names it, not a machine path
        plan = dataclasses.replace(plan, source=cred["plan"])
    assessment = assess(plan, evidence) if plan is not None else None
    written: dict[str, Path] = {}
    if assessment is not None:
        assessment.to_csv(ev_dir / "assessment.csv", index=False)
        written["assessment"] = ev_dir / "assessment.csv"
    write_json(ev_dir / "evidence_final.json", evidence)
    written["evidence_final"] = ev_dir / "evidence_final.json"

    if gci_table is not None:  # labelled rows for the report's table and bar chart
        gci_table.index = [
            f"{a}/{e}" for a, e in zip(gci_table["arm"], gci_table["endpoint"], strict=True)
        ]
        verification["gci_table"] = gci_table
    trial = {
        **config["trial"],
        "n_patients": config["cohort"]["n"],
        "arms": [a["name"] for a in arms_of(config)],
        "model": f"{model.name} {model.version}",
    }
    answer = None
    question = config["report"].get("question")
    if question and outcomes is not None and cohort is not None:
        from credibility.answer import answer_tables, plot_answer

        by_arm, paired = answer_tables(outcomes, cohort, question)
        figure = plot_answer(outcomes, cohort, question, res / "figures" / "answer.png")
        answer = {"question": question, "by_arm": by_arm, "paired": paired, "figure": figure}
        by_arm.to_csv(ev_dir / "answer_by_arm.csv", index=False)
        paired.to_csv(ev_dir / "answer_paired.csv", index=False)
        written["answer_by_arm"] = ev_dir / "answer_by_arm.csv"
        written["answer_paired"] = ev_dir / "answer_paired.csv"
        if figure is not None:
            written["answer_figure"] = figure
    calibration_context = None
    if calibration is not None:
        calibration_context = {
            "summary": calibration,
            "fit": _read_csv(res / "calibration" / "calibration_fit.csv"),
            "loso": _read_csv(res / "calibration" / "calibration_loso.csv"),
        }
    context = build_context(
        events=model.events,
        subgroups=config["report"]["subgroups"],
        answer=answer,
        calibration=calibration_context,
        trial=trial,
        cohort=cohort,
        outcomes=outcomes,
        cohort_check=_read_csv(res / "cohort_check.csv"),
        verification=verification,
        validation=validation,
        applicability=applic,
        uq=uq,
        sa=sa,
        plan=plan,
        assessment=assessment,
        evidence=evidence,
        model_card=card,
        manifest=json.loads(Path(manifest).read_text()),
        figures={k: v for k, v in figures.items() if v.is_file()},
        endpoints=[e for e in config["endpoints"] if e in outcomes],
    )
    out = render_report(html, context=context, pdf=config["report"]["pdf"])
    written["html"] = Path(html)
    if config["report"]["pdf"]:
        written["pdf"] = Path(html).with_suffix(".pdf")
    record_stage(res, "report", inputs=reads, outputs=written)
    if assessment is not None:
        outputs["assessment.csv"] = ev_dir / "assessment.csv"
    outputs["credibility_report.html"] = Path(html)
    if config["report"]["pdf"]:
        outputs["credibility_report.pdf"] = Path(html).with_suffix(".pdf")
    write_manifest(res, outputs=outputs, hashed=hashed, **manifest_args)
    if rerun["error"]:
        outcome = f"could not run: {rerun['error']}"
    else:
        outcome = f"{rerun['n_differences']} difference(s), {rerun['refused'] or 'model ran'}"
    log.info(
        "report: %s (%d broken links in the stage chain; re-run: %s)", out, len(chain), outcome
    )
    return out
