"""Report stage (``workflow/rules/report.smk``): the assessment, the manifest, the report.

The stage checks the whole stage chain again (software quality assurance evidence), writes
the manifest, has a separate ``isct verify`` process re-simulate sampled patients from the
manifest alone (use-error evidence), assesses every V&V 40 factor of the plan and renders the
report.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr

from models import load_card

from .._ahead import AFTER_GO, hold_back, send_go
from ..chain import check_stage_chain, record_stage
from ..jsonio import write_json
from ..merkle import tree_summary
from ..provenance import write_manifest
from ..trial import Trial

__all__ = ["report_tables", "reproducibility_evidence", "run_report"]

log = logging.getLogger("isct.report")

#: Upper bound on the separate re-simulation process (external solvers can be slow).
VERIFY_TIMEOUT_S = 3600
#: Characters of the verify process's stderr kept in the evidence when it fails.
STDERR_TAIL = 2000
#: Rows of re-simulation differences kept in the evidence (``n_differences`` counts them all).
MAX_DIFFERENCES_SHOWN = 100


def _read_csv(path: Path) -> pd.DataFrame | None:
    if not path.is_file() or path.stat().st_size == 0:
        return None
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return None


#: What opening a store the run did not write (or wrote only in part) raises.
_NO_STORE = (FileNotFoundError, KeyError, OSError, ValueError)


def _open(path: Path, group: str | None = None) -> xr.Dataset | None:
    try:
        return xr.open_zarr(path, group=group, consolidated=False).load()
    except _NO_STORE:
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


class _VerifyProcess:
    """The separate ``isct verify`` process of :func:`reproducibility_evidence`.

    Started before the manifest is written (``--after-go``: the process imports what it
    needs, then waits for a go line on its stdin, :mod:`isct._ahead`), told to go by :meth:`go` once the
    manifest is on disk, and read by :meth:`result`; the report stage hashes its inputs and
    writes the manifest during the first, and computes its tables and figures during the
    second. Closed without ``go`` (the stage failed), it exits without checking anything.
    """

    def __init__(self, results: str | os.PathLike, *, sample: int | None, seed: int) -> None:
        which = ["--all"] if sample is None else ["--sample", str(sample)]
        self.command = (
            f"python -m isct verify {results} {' '.join(which)} --seed {seed} --json <file> "
            "(separate process; environment: PATH and PYTHONPATH only)"
        )
        env = {k: os.environ[k] for k in ("PATH", "PYTHONPATH") if k in os.environ}
        self._tmp = tempfile.TemporaryDirectory(prefix="isct-verify-")
        self.out = Path(self._tmp.name) / "verify.json"
        argv = [sys.executable, "-m", "isct", "verify", str(results), *which]
        argv += ["--seed", str(seed), "--json", str(self.out), AFTER_GO]
        self._proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def go(self) -> None:
        """The manifest is written: check it (a process that died already: result() says how)."""
        stdin, self._proc.stdin = self._proc.stdin, None  # communicate() then leaves it be
        send_go(stdin)

    def cancel(self) -> None:
        """The stage failed before the manifest: the process exits unused."""
        stdin, self._proc.stdin = self._proc.stdin, None
        hold_back(stdin)
        self._proc.communicate()
        self._tmp.cleanup()

    def result(self) -> dict[str, Any]:
        try:
            return self._read()
        finally:
            self._tmp.cleanup()

    def _read(self) -> dict[str, Any]:
        proc, command, out = self._proc, self.command, self.out
        try:
            stdout, stderr = proc.communicate(timeout=VERIFY_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, tail = proc.communicate()
            return _rerun_failed(command, None, f"timed out after {VERIFY_TIMEOUT_S} s\n{tail}")
        # exit 1 means "differences found": the JSON says which
        if proc.returncode not in (0, 1) or not out.is_file():
            return _rerun_failed(command, proc.returncode, stderr or stdout)
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
    process = _VerifyProcess(results, sample=sample, seed=seed)
    process.go()
    return process.result()


def _json_if_any(path: Path) -> Any:
    """A stage's JSON output, or None when the trial has no such stage output."""
    return json.loads(path.read_text()) if path.is_file() else None


def _planning(trial: Trial, outcomes, cohort) -> pd.DataFrame | None:
    """The real trial's size for every entry of the config's ``planning``."""
    items = trial["planning"]
    if not items or outcomes is None or cohort is None:
        return None
    from credibility.planning import planning_table

    return planning_table(outcomes, cohort, items, seed=trial.seed)


def _populations(
    trial: Trial,
    res: Path,
    outcomes: xr.Dataset | None,
    cohort: xr.Dataset | None,
    summary: dict[str, Any] | None,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The certificates for the report, and the question answered for each population."""
    from credibility.populations import population_answers

    from .cohort import POPULATION_WEIGHT

    if summary is None:
        return None, None
    folder = res / "certificate"
    names = (["trial"] if summary.get("matched") else []) + list(summary.get("populations", {}))
    tables = {n: _read_csv(folder / n / "certificate.csv") for n in names}
    figures = {n: folder / n / "certificate.png" for n in names}
    context = {"summary": summary, "tables": tables, "figures": figures}
    question = trial["report"].get("question")
    extra = summary.get("populations") or {}
    if not extra or question is None or outcomes is None or cohort is None:
        return context, None
    label = "enrolled population" if summary.get("matched") else "virtual cohort"
    populations: dict[str, Any] = {"trial": {"label": label}}
    for name, p in extra.items():
        populations[name] = {
            "label": p["label"],
            "weights": cohort[f"{POPULATION_WEIGHT}{name}"].values,
        }
    answers = population_answers(
        outcomes, cohort, question, populations, subgroups=trial["report"]["subgroups"]
    )
    return context, answers


def _tables(
    trial: Trial,
    res: Path,
    outcomes: xr.Dataset | None,
    cohort: xr.Dataset | None,
    certificate: dict[str, Any] | None,
) -> tuple[dict[str, pd.DataFrame], dict[str, Any] | None, dict[str, Any] | None]:
    """The report's tables (``evidence/<name>.csv``), the certificates for the report and the
    question answered for each population (:func:`_populations`)."""
    tables: dict[str, pd.DataFrame] = {}
    question = trial["report"].get("question")
    if question and outcomes is not None and cohort is not None:
        from credibility.answer import answer_tables

        tables["answer_by_arm"], tables["answer_paired"] = answer_tables(outcomes, cohort, question)
    context, populations = _populations(trial, res, outcomes, cohort, certificate)
    if populations is not None:
        for kind in ("by_arm", "comparison"):
            tables[f"populations_{kind}"] = populations[kind]
    planning = _planning(trial, outcomes, cohort)
    if planning is not None:
        tables["planning"] = planning
    return tables, context, populations


def report_tables(trial: Trial, results: str | os.PathLike) -> dict[str, pd.DataFrame]:
    """The report's tables computed from a results folder's stores, as the report stage
    writes them (``evidence/<name>.csv``, the same function): the answer by arm and paired,
    the answer for each comparator population, the real trial's size. ``isct replay``
    regenerates them from a bundle with this function and compares their data with the
    bundled files.

    Returns
    -------
    dict of str to DataFrame
        ``answer_by_arm``, ``answer_paired``, ``populations_by_arm``,
        ``populations_comparison``, ``planning``: those the trial has.
    """
    res = Path(results)
    certificate = _json_if_any(res / "certificate" / "summary.json")
    outcomes, cohort = _open(res / "outcomes.zarr"), _open(res / "cohort.zarr")
    return _tables(trial, res, outcomes, cohort, certificate)[0]


def _calibration_context(res: Path, calibration: dict[str, Any] | None) -> dict[str, Any] | None:
    if calibration is None:
        return None
    return {
        "summary": calibration,
        "fit": _read_csv(res / "calibration" / "calibration_fit.csv"),
        "loso": _read_csv(res / "calibration" / "calibration_loso.csv"),
    }


def _readable(path: Path) -> bool:
    try:
        xr.open_zarr(path, consolidated=False)
    except _NO_STORE:
        return False
    return True


def _manifest_args(trial: Trial, res: Path, config_path: str | None) -> dict[str, Any]:
    """What the manifest records besides the outputs: config, inputs, seeds, hash tree."""
    model, cred = trial.model, trial["credibility"]
    inputs: dict[str, Path] = {
        "population_spec": trial.resolve(trial["cohort"]["population"]),
        "model_source": Path(__import__(type(model).__module__, fromlist=["_"]).__file__).parent,
    }
    for key in ("plan", "comparators", "comparator_populations"):
        if cred[key]:
            inputs[key] = trial.resolve(cred[key])
    if trial["model"].get("card"):
        inputs["model_card"] = trial.resolve(trial["model"]["card"])
    stores = _readable(res / "cohort.zarr") and _readable(res / "outcomes.zarr")
    return {
        "config_path": Path(config_path) if config_path else trial.path,
        "inputs": inputs,
        "seeds": {"trial_seed": trial.seed},
        "root": res.parent.parent,
        # the per-patient hash tree's root goes into the manifest and is printed in the report
        "merkle": tree_summary(res) if stores else None,
    }


def run_report(
    trial: Trial, *, results: str, html: str, manifest: str, config_path: str | None = None
) -> Path:
    """Report stage: stage chain and re-run evidence, V&V 40 assessment, manifest and report.

    The stage hashes what it reads (``provenance/report.json``) and checks the whole stage
    chain before it writes the manifest; the number of broken links is the evidence
    ``provenance.stage_chain_mismatches``. With the manifest written, a separate process
    re-simulates ``credibility.resimulation.patients`` patients
    (:func:`reproducibility_evidence`). The manifest is written again at the end so that it
    holds the report. The processes that lay the PDF out in parts start first
    (:class:`credibility.report.pdf.PdfLayout`): they import WeasyPrint meanwhile.
    """
    from credibility.report.pdf import PdfLayout

    with PdfLayout() if trial["report"]["pdf"] else contextlib.nullcontext() as layout:
        return _report(
            trial,
            results=results,
            html=html,
            manifest=manifest,
            config_path=config_path,
            layout=layout,
        )


def _report(
    trial: Trial,
    *,
    results: str,
    html: str,
    manifest: str,
    config_path: str | None,
    layout: Any,
) -> Path:
    from credibility.evidence import collect_evidence
    from credibility.plan import assess, load_plan
    from credibility.report import finish_context, render_report, start_context

    res = Path(results)
    ev_dir = res / "evidence"
    cred = trial["credibility"]
    model = trial.model
    figures = {
        "cohort_check": res / "figures" / "cohort_check.png",
        "uq_intervals": res / "figures" / "uq_intervals.png",
        "sa_indices": res / "figures" / "sa_indices.png",
        "sa_convergence": res / "figures" / "sa_convergence.png",
    }
    card_file = trial["model"].get("card")
    card_path = trial.resolve(card_file) if card_file else model.card_path()
    if card_path is not None and not card_path.is_file():
        card_path = None
    plan_path = trial.resolve(cred["plan"]) if cred["plan"] else None
    candidates = {
        "evidence": ev_dir / "evidence.json",
        "validation": ev_dir / "validation.csv",
        "applicability": ev_dir / "applicability.csv",
        "gci": ev_dir / "gci.csv",
        "cohort_check": res / "cohort_check.csv",
        "calibration": res / "calibration" / "calibration.json",
        "certificate": res / "certificate",
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
    # the separate re-run process starts now: its imports overlap the hashing below
    verifying = _VerifyProcess(res, sample=cred["resimulation"]["patients"], seed=trial.seed)
    try:
        # hash what this stage reads as it reads it, then check every link of the chain
        read = {k: p for k, p in candidates.items() if p is not None and Path(p).exists()}
        reads = record_stage(res, "report", inputs=read, outputs={})["inputs"]
        chain = check_stage_chain(res)
        for broken in chain:
            log.warning("stage chain: %s", broken)
        hashed = {res.resolve() / e["path"]: e for e in reads.values()}
        outputs = {
            p.name: p
            for p in sorted(res.iterdir())
            if p.name not in ("manifest.json", "logs", "benchmarks", "runs")
            and not p.name.endswith("_runs.zarr")
        }
        manifest_args = _manifest_args(trial, res, config_path)
        write_manifest(res, outputs=outputs, hashed=hashed, **manifest_args)
    except BaseException:
        verifying.cancel()
        raise
    verifying.go()

    # the re-run works while this process reads the stores, computes the report's tables,
    # draws the answer figure and builds every section that does not need the evidence
    with tempfile.TemporaryDirectory(prefix="isct-report-") as scratch:
        try:
            stage_evidence = json.loads((ev_dir / "evidence.json").read_text())
            calibration = _json_if_any(res / "calibration" / "calibration.json")
            certificate = _json_if_any(res / "certificate" / "summary.json")
            cohort = _open(res / "cohort.zarr")
            outcomes = _open(res / "outcomes.zarr")
            uq = _open(res / "uq.zarr")
            sa = _open(res / "sa.zarr", group="parameters")
            card = load_card(card_path, model) if card_path is not None else None
            tables, certificate_context, populations = _tables(
                trial, res, outcomes, cohort, certificate
            )
            answer, drawn = None, None
            if "answer_by_arm" in tables:
                from credibility.answer import plot_answer

                # drawn outside the results: the re-run checks the manifest's hashes meanwhile
                question = trial["report"]["question"]
                drawn = plot_answer(outcomes, cohort, question, Path(scratch) / "answer.png")
                answer = {
                    "question": question,
                    "by_arm": tables["answer_by_arm"],
                    "paired": tables["answer_paired"],
                    "figure": drawn,
                }
            validation = _read_csv(ev_dir / "validation.csv")
            applic = _read_csv(ev_dir / "applicability.csv")
            gci_table = _read_csv(ev_dir / "gci.csv")
            verification = dict(stage_evidence.get("verification", {}))
            scalars = {k: v for k, v in verification.items() if not isinstance(v, dict | list)}
            if gci_table is not None:  # labelled rows for the report's table and bar chart
                gci_table.index = [
                    f"{a}/{e}" for a, e in zip(gci_table["arm"], gci_table["endpoint"], strict=True)
                ]
                verification["gci_table"] = gci_table
            plan = load_plan(plan_path) if plan_path is not None else None
            if plan is not None:  # show the plan as the config names it, not a machine path
                plan = dataclasses.replace(plan, source=cred["plan"])
            partial = start_context(
                events=model.events,
                subgroups=trial["report"]["subgroups"],
                answer=answer,
                calibration=_calibration_context(res, calibration),
                certificate=certificate_context,
                populations=populations,
                sizing=_json_if_any(res / "sizing" / "sizing.json"),
                planning=tables.get("planning"),
                trial={
                    **trial["trial"],
                    "n_patients": int(outcomes.sizes["patient"])
                    if outcomes is not None
                    else trial["cohort"]["n"],
                    "arms": trial.arm_names,
                    "model": f"{model.name} {model.version}",
                },
                cohort=cohort,
                outcomes=outcomes,
                cohort_check=_read_csv(res / "cohort_check.csv"),
                verification=verification,
                validation=validation,
                applicability=applic,
                uq=uq,
                sa=sa,
                plan=plan,
                model_card=card,
                figures={k: v for k, v in figures.items() if v.is_file()},
                endpoints=[e for e in trial.endpoints if e in outcomes],
            )
        finally:
            rerun = verifying.result()
        written: dict[str, Path] = {}
        if drawn is not None:
            answer_figure = res / "figures" / "answer.png"
            answer_figure.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(drawn, answer_figure)
            written["answer_figure"] = answer_figure

    evidence = collect_evidence(
        verification=scalars,
        code_verification=stage_evidence.get("code_verification"),
        validation=validation,
        applicability=applic,
        outcomes=outcomes,
        model_card=card,
        uq=uq,
        stage_chain=[m.to_dict() for m in chain],
        reproducibility=rerun,
        calibration=calibration,
        cohort=certificate,
        quantities_of_interest=trial.endpoints,
    )
    assessment = assess(plan, evidence) if plan is not None else None
    if assessment is not None:
        assessment.to_csv(ev_dir / "assessment.csv", index=False)
        written["assessment"] = ev_dir / "assessment.csv"
    write_json(ev_dir / "evidence_final.json", evidence)
    written["evidence_final"] = ev_dir / "evidence_final.json"
    for name, table in tables.items():
        table.to_csv(ev_dir / f"{name}.csv", index=False)
        written[name] = ev_dir / f"{name}.csv"
    context = finish_context(
        partial,
        assessment=assessment,
        evidence=evidence,
        manifest=json.loads(Path(manifest).read_text()),
    )
    out = render_report(html, context=context, pdf=trial["report"]["pdf"], layout=layout)
    written["html"] = Path(html)
    if trial["report"]["pdf"]:
        written["pdf"] = Path(html).with_suffix(".pdf")
    record_stage(res, "report", inputs=reads, outputs=written)
    if assessment is not None:
        outputs["assessment.csv"] = ev_dir / "assessment.csv"
    outputs["credibility_report.html"] = Path(html)
    if trial["report"]["pdf"]:
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
