"""The whole Snakemake DAG end to end on a tiny trial, and the CLI around it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml
import zarr

from isct.cli import main
from isct.provenance import hash_path, verify_hashes
from isct.stages import reproducibility_evidence, run_credibility, run_report
from isct.trial import Trial, load_config

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY = REPO_ROOT / "tests" / "data" / "tiny.yaml"
STAGES = ("cohort", "simulate", "uq", "sensitivity", "credibility", "report")

# Snakemake's marker in directory() outputs (cohort.zarr) is rightly ignored by zarr
pytestmark = pytest.mark.filterwarnings("ignore:Object at .snakemake_timestamp")


@pytest.fixture
def tiny_copy(tiny_run, tmp_path) -> Path:
    """A copy of the finished tiny run (results and report) that a test may tamper with."""
    for folder in ("results", "reports"):
        shutil.copytree(
            tiny_run / folder, tmp_path / folder, ignore=shutil.ignore_patterns("*_runs.zarr")
        )
    return tmp_path


def _change_outcome(results: Path, name: str, arm: int, patient: int, delta: float) -> float:
    """Add ``delta`` to one stored value through zarr (chunks are compressed); the old value."""
    values = zarr.open_group(results / "outcomes.zarr", mode="r+")[name]
    old = float(values[arm, patient])
    values[arm, patient] = old + delta
    return old


def _ok_patient(results: Path, arm: int) -> int:
    status = xr.open_zarr(results / "outcomes.zarr", consolidated=False)["status"].values
    return int(np.flatnonzero(status[arm] == 0)[-1])


def _assessment(results: Path) -> pd.Series:
    return pd.read_csv(results / "evidence" / "assessment.csv").set_index("factor")["status"]


def _report_again(workdir: Path, config: Trial | None = None) -> dict:
    """The credibility and report stages once more on a copied run; the final evidence."""
    config = config or load_config(TINY)
    results = workdir / "results" / "ci_tiny"
    run_credibility(
        config,
        cohort=str(results / "cohort.zarr"),
        outcomes=str(results / "outcomes.zarr"),
        evidence=str(results / "evidence" / "evidence.json"),
        validation=str(results / "evidence" / "validation.csv"),
    )
    run_report(
        config,
        results=str(results),
        html=str(workdir / "reports" / "ci_tiny" / "credibility_report.html"),
        manifest=str(results / "manifest.json"),
        config_path=str(TINY),
    )
    return json.loads((results / "evidence" / "evidence_final.json").read_text())


def test_every_stage_wrote_its_outputs(tiny_run):
    results = tiny_run / "results" / "ci_tiny"
    for name in (
        "cohort.zarr",
        "outcomes.zarr",
        "uq.zarr",
        "sa.zarr",
        "manifest.json",
        "simulate.json",
    ):
        assert (results / name).exists(), name
    for name in (
        "evidence.json",
        "validation.csv",
        "assessment.csv",
        "gci.csv",
        "applicability.csv",
    ):
        assert (results / "evidence" / name).is_file(), name
    outcomes = xr.open_zarr(results / "outcomes.zarr", consolidated=False)
    assert outcomes.sizes["arm"] == 2 and outcomes.sizes["patient"] == 40
    assert (outcomes["status"].values >= 0).all()  # every cell was run
    assert (outcomes["status"].values == 0).mean() > 0.8
    ok = outcomes["status"].values == 0
    gradient = outcomes["mean_gradient_mmhg"].values[ok]
    assert ((gradient > 1) & (gradient < 80)).all()  # physiological Doppler gradients (mmHg)
    uq = json.loads((results / "uq.json").read_text())
    assert uq["enabled"] and uq["model_evaluations"] > 0
    assert set(uq["outcomes"]) == {"ppm_moderate_or_severe", "ppm_severe", "high_gradient"}
    sa = json.loads((results / "sa.json").read_text())
    # the calibrated parameters join the UQ/SA parameters with their posterior
    calibrated = {"orifice_coefficient_balloon_expandable", "eoa_random_effect_sd"}
    assert set(sa["parameters"]["names"]) == {"aorta_diameter_mm", *calibrated}
    assert sa["parameters"]["n_steps"] == [16, 32] and sa["parameters"]["converged"] == 0
    assert (results / "figures" / "sa_convergence.png").stat().st_size > 1000
    s1 = sa["parameters"]["indices"]["S1"]["mean_gradient_mmhg"]["balloon_expandable"]
    # the calibrated orifice drives the gradient, not the ascending-aorta size
    assert s1["orifice_coefficient_balloon_expandable"] > s1["aorta_diameter_mm"]
    evidence = json.loads((results / "evidence" / "evidence.json").read_text())
    assert evidence["verification"]["gci_max_pct"] < 5
    assert evidence["code_verification"]["order_error_abs"] < 0.2


def test_report_has_every_section_with_numbers_from_the_run(tiny_run):
    html = (tiny_run / "reports" / "ci_tiny" / "credibility_report.html").read_text()
    for section in (
        "Summary",
        "Question of interest",
        "Model description",
        "Verification",
        "Validation",
        "Uncertainty quantification and sensitivity analysis",
        "Results by arm",
        "Subgroups",
        "Failures",
        "Limitations",
        "Credibility assessment",
        "Provenance",
    ):
        assert section in html, section
    assert "<img" in html and "data:image/png;base64," in html  # figures inline
    assert "<link" not in html  # self-contained
    outcomes = xr.open_zarr(tiny_run / "results" / "ci_tiny" / "outcomes.zarr", consolidated=False)
    ok = int((outcomes["status"].values == 0).sum())
    assert f"{100 * ok / outcomes['status'].size:.2f} % of {outcomes['status'].size}" in html


def test_every_stage_records_what_it_read_and_wrote_and_every_link_holds(tiny_run):
    results = tiny_run / "results" / "ci_tiny"
    records = {s: json.loads((results / "provenance" / f"{s}.json").read_text()) for s in STAGES}
    assert records["simulate"]["inputs"]["cohort"]["path"] == "cohort.zarr"
    assert records["simulate"]["outputs"]["outcomes"]["path"] == "outcomes.zarr"
    assert {"cohort", "outcomes"} <= set(records["uq"]["inputs"])
    assert {"evidence", "outcomes", "uq", "sa"} <= set(records["report"]["inputs"])
    # the cohort store read downstream is the one the cohort stage wrote, chunk by chunk
    written = records["cohort"]["outputs"]["cohort"]["files"]
    for stage in ("simulate", "uq", "sensitivity", "credibility", "report"):
        assert records[stage]["inputs"]["cohort"]["files"] == written, stage
    evidence = json.loads((results / "evidence" / "evidence_final.json").read_text())
    assert evidence["provenance"] == {"stage_chain_mismatches": 0, "stage_chain": []}
    stage_evidence = json.loads((results / "evidence" / "evidence.json").read_text())
    assert stage_evidence["stage_chain"]["mismatches"] == []
    rerun = evidence["reproducibility"]
    assert rerun["resimulation_match"] is True and rerun["error"] is None
    assert rerun["patients_checked"] == 20 and rerun["arms_checked"] == 2
    assert rerun["n_differences"] == 0 and rerun["manifest_mismatches"] == 0
    assert rerun["method"].startswith("python -m isct verify results/ci_tiny --sample 20")
    status = _assessment(results)
    assert status["software_quality_assurance"] == "pass" and status["use_error"] == "pass"
    html = (tiny_run / "reports" / "ci_tiny" / "credibility_report.html").read_text()
    assert "Every file each stage read is the one the stage that wrote it recorded" in html
    assert 'id="rerun-items"' in html and "separate process" in html


def test_a_cohort_chunk_changed_after_simulate_fails_software_quality_assurance(tiny_copy):
    results = tiny_copy / "results" / "ci_tiny"
    chunk = "cohort.zarr/age_yr/c/0"
    before = hash_path(results / "cohort.zarr")["files"]["age_yr/c/0"]
    age = zarr.open_group(results / "cohort.zarr", mode="r+")["age_yr"]
    age[3] = age[3] + 10.0  # patient 3: ten years older after the simulate stage ran
    evidence = _report_again(tiny_copy)

    stage_evidence = json.loads((results / "evidence" / "evidence.json").read_text())
    [link] = stage_evidence["stage_chain"]["mismatches"]
    assert (link["reader"], link["writer"], link["path"], link["kind"]) == (
        "credibility", "cohort", chunk, "modified",
    )  # fmt: skip
    assert link["expected"] == before != link["actual"]
    assert evidence["provenance"]["stage_chain_mismatches"] == 2
    assert {(m["reader"], m["path"]) for m in evidence["provenance"]["stage_chain"]} == {
        ("credibility", chunk),
        ("report", chunk),
    }
    status = _assessment(results)
    assert status["software_quality_assurance"] == "fail"
    # age is no model input: re-simulation cannot see this change, the stage chain does
    assert status["use_error"] == "pass"
    html = (tiny_copy / "reports" / "ci_tiny" / "credibility_report.html").read_text()
    assert 'id="stage-chain"' in html and chunk in html
    assert "software quality assurance (fail)" in html


def test_outcomes_that_differ_from_a_resimulation_fail_use_error(tiny_copy):
    results = tiny_copy / "results" / "ci_tiny"
    patient = _ok_patient(results, arm=1)
    old = _change_outcome(results, "mean_gradient_mmhg", arm=1, patient=patient, delta=1.0)
    config = load_config(TINY).replace({"credibility.resimulation.patients": 40})  # everyone
    rerun = _report_again(tiny_copy, config)["reproducibility"]
    assert rerun["resimulation_match"] is False and rerun["error"] is None
    assert rerun["patients_checked"] == 40 and rerun["returncode"] == 1
    assert rerun["differences"] == [
        {
            "patient": patient,
            "arm": "self_expanding",
            "output": "mean_gradient_mmhg",
            "stored": old + 1.0,
            "resimulated": old,
        }
    ]
    status = _assessment(results)
    assert status["use_error"] == "fail"
    assert status["software_quality_assurance"] == "fail"  # changed after simulate wrote it
    html = (tiny_copy / "reports" / "ci_tiny" / "credibility_report.html").read_text()
    assert 'id="rerun-differences"' in html and "self_expanding" in html


def test_a_rerun_that_cannot_start_is_failed_evidence_with_its_stderr(tmp_path):
    results = tmp_path / "results" / "gone"
    results.mkdir(parents=True)
    rerun = reproducibility_evidence(results, sample=5, seed=0)
    assert rerun["resimulation_match"] is False and rerun["returncode"] == 2
    assert "manifest.json" in rerun["error"] and "cannot read manifest" in rerun["error"]


def test_isct_verify_resimulation_names_an_outcome_changed_inside_a_chunk(tiny_copy, capsys):
    results = tiny_copy / "results" / "ci_tiny"
    patient = _ok_patient(results, arm=1)
    old = _change_outcome(results, "mean_gradient_mmhg", arm=1, patient=patient, delta=0.5)
    # write the tampered store's hashes into the manifest, so the hash check passes
    manifest_file = results / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    manifest["outputs"]["outcomes.zarr"].update(hash_path(results / "outcomes.zarr"))
    manifest_file.write_text(json.dumps(manifest, indent=2))
    assert verify_hashes(results, root=tiny_copy) == []

    report = tiny_copy / "verify.json"
    assert main(["verify", str(results), "--all", "--json", str(report)]) == 1
    out = capsys.readouterr().out
    assert "1 difference(s)" in out
    assert f"patient {patient} arm 'self_expanding' mean_gradient_mmhg" in out
    checked = json.loads(report.read_text())
    assert checked["hash_mismatches"] == [] and checked["ok"] is False
    assert checked["resimulation"]["patients"] == list(range(40))
    assert checked["resimulation"]["differences"] == [
        {
            "patient": patient,
            "arm": "self_expanding",
            "output": "mean_gradient_mmhg",
            "stored": old + 0.5,
            "resimulated": old,
        }
    ]


def test_isct_verify_passes_then_names_a_tampered_file(tiny_copy, capsys):
    results = tiny_copy / "results" / "ci_tiny"
    assert main(["verify", str(results), "--sample", "10"]) == 0
    check = results / "cohort_check.csv"
    check.write_text(check.read_text() + "\n")
    assert main(["verify", str(results), "--sample", "10"]) == 1
    out = capsys.readouterr().out
    assert "cohort_check.csv" in out and "modified" in out


def test_isct_info_summarises_stores(tiny_run, capsys):
    results = tiny_run / "results" / "ci_tiny"
    assert main(["info", str(results / "outcomes.zarr")]) == 0
    out = capsys.readouterr().out
    assert (
        "arm=2" in out and "patient=40" in out and "mean_gradient_mmhg" in out and "[mmHg]" in out
    )
    assert main(["info", str(results)]) == 0
    assert "cohort.zarr" in capsys.readouterr().out
    assert main(["info", str(results / "sa.zarr")]) == 0  # one group per analysis
    out = capsys.readouterr().out
    assert (
        "group parameters" in out
        and "group covariates_delta" in out
        and "S1 (output,parameter,arm)" in out
    )


def test_rerun_is_up_to_date(tiny_run):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "isct.cli",
            "run",
            str(TINY),
            "--cores",
            "1",
            "--directory",
            str(tiny_run),
            "--dry-run",
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 0
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_snakemake_lint_and_snakefmt_are_clean():
    bindir = Path(sys.executable).parent
    lint = subprocess.run(
        [bindir / "snakemake", "--lint", "--configfile", str(TINY), "--cores", "1"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = subprocess.run(
        [bindir / "snakefmt", "--check", "Snakefile", "workflow/rules"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert fmt.returncode == 0, fmt.stderr


def test_snakemake_report_holds_the_credibility_report(tiny_run):
    out = tiny_run / "snakemake_report.html"
    bindir = Path(sys.executable).parent
    proc = subprocess.run(
        [
            bindir / "snakemake",
            "--snakefile",
            str(REPO_ROOT / "Snakefile"),
            "--directory",
            str(tiny_run),
            "--configfile",
            str(TINY),
            "--cores",
            "1",
            "--report",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    assert (
        "credibility_report.html" in text
        and "Credibility report" in text
        and "cohort_check.csv" in text
    )


def test_a_changed_trial_config_reruns_the_stages_it_feeds(tiny_run, tmp_path):
    config = yaml.safe_load(TINY.read_text())
    config["cohort"]["n"] = 30
    changed = tmp_path / "tiny.yaml"
    changed.write_text(yaml.safe_dump(config))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "isct.cli",
            "run",
            str(changed),
            "--cores",
            "1",
            "--directory",
            str(tiny_run),
            "--dry-run",
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout + proc.stderr
    for rule in ("cohort", "simulate", "uq", "sensitivity", "credibility", "report"):
        assert f"rule {rule}:" in out or f"localrule {rule}:" in out, rule
    assert "Params have changed" in out


def test_simulate_stage_starts_over_when_the_trial_changed(tmp_path, monkeypatch):
    import cohorts
    from isct.stages import run_simulate

    monkeypatch.setenv("ISCT_WORKERS", "1")
    spec = cohorts.load_spec(REPO_ROOT / "cohorts" / "populations" / "tavr_severe_as.yaml")
    cohorts.write_cohort(spec, 30, tmp_path / "cohort.zarr", seed=1)
    config = Trial.from_dict(
        {
            "trial": {"name": "change"},
            "cohort": {"population": "cohorts/populations/tavr_severe_as.yaml", "n": 30},
            "model": {"name": "orifice"},
            "arms": [{"name": "a", "device": {"eoa_cm2": 1.5}}],
            "endpoints": ["mean_gradient_mmhg"],
            "uncertainty": {"enabled": False},
            "sensitivity": {"enabled": False},
            "credibility": {"plan": None, "comparators": None},
        }
    )
    store = tmp_path / "outcomes.zarr"
    first = run_simulate(
        config,
        cohort=str(tmp_path / "cohort.zarr"),
        store=str(store),
        summary=str(tmp_path / "s.json"),
    )
    assert list(first["arm"].values) == ["a"]
    config = config.replace({"arms": [*config["arms"], {"name": "b", "device": {"eoa_cm2": 2.0}}]})
    second = run_simulate(
        config,
        cohort=str(tmp_path / "cohort.zarr"),
        store=str(store),
        summary=str(tmp_path / "s.json"),
    )
    assert list(second["arm"].values) == ["a", "b"]
    assert (second["status"].values >= 0).all()


def test_calibration_is_fitted_to_calibration_rows_only_and_used_downstream(tiny_run):
    results = tiny_run / "results" / "ci_tiny"
    cal = json.loads((results / "calibration" / "calibration.json").read_text())
    comparators = pd.read_csv(REPO_ROOT / "credibility" / "comparators" / "tavr.csv", comment="#")
    calibration_ids = set(comparators.loc[comparators["role"] == "calibration", "id"])
    assert cal["enabled"] and set(cal["comparators"]["rows"]) == calibration_ids
    for name, p in cal["parameters"].items():
        assert p["prior_low"] <= p["ci_low"] <= p["estimate"] <= p["ci_high"] <= p["prior_high"], (
            name
        )
    fit = pd.read_csv(results / "calibration" / "calibration_fit.csv")
    assert set(fit["id"]) == calibration_ids and (fit["role"] == "calibration").all()
    assert len(pd.read_csv(results / "calibration" / "calibration_loso.csv")) == len(
        calibration_ids
    )
    validation = pd.read_csv(results / "evidence" / "validation.csv")
    assert not calibration_ids & set(validation["id"])
    assert (validation.loc[validation["timepoint_days"] > 730, "verdict"] == "excluded").all()
    # the simulate stage ran with the calibrated values
    outcomes = xr.open_zarr(results / "outcomes.zarr", consolidated=False)
    settings = json.loads(outcomes.attrs["settings_json"])
    for name, value in cal["settings"].items():
        assert settings[name] == pytest.approx(value)
    # and the answer up front is in the report
    paired = pd.read_csv(results / "evidence" / "answer_paired.csv")
    assert set(paired["endpoint"]) == {"mean_gradient_mmhg", "moderate or severe PPM"}
    html = (tiny_run / "reports" / "ci_tiny" / "credibility_report.html").read_text()
    assert "The answer: small annulus" in html and "5.1 Calibration" in html


def test_the_run_s_evidence_holds_only_listed_keys(tiny_run):
    from credibility.evidence import EVIDENCE_KEYS, unlisted_keys

    evidence = json.loads(
        (tiny_run / "results" / "ci_tiny" / "evidence" / "evidence_final.json").read_text()
    )
    assert unlisted_keys(evidence) == []
    assert set(evidence) == {k.key.split(".")[0] for k in EVIDENCE_KEYS}


def test_the_cohort_is_matched_with_a_certificate_and_answered_for_another_population(tiny_run):
    """cohort.match re-weights the tiny cohort to the Evolut Low Risk baseline table;
    cohort.populations re-weights the same patients to the TVT registry's; the certificate
    grades equivalency, and the report answers the question for both populations."""
    results = tiny_run / "results" / "ci_tiny"
    summary = json.loads((results / "certificate" / "summary.json").read_text())
    assert summary["matched"] and summary["table"] == "evolut_low_risk" and summary["all_passed"]
    assert summary["populations"]["tvt_registry"]["all_passed"]
    cohort = xr.open_zarr(results / "cohort.zarr", consolidated=False)
    w, p = cohort["sampling_weight"].values, cohort["population_weight_tvt_registry"].values
    age = cohort["age_yr"].values
    # the enrolled population is younger than the real-world one, as their tables say
    assert np.average(age, weights=w) == pytest.approx(74.0, abs=0.5)
    assert np.average(age, weights=p) == pytest.approx(81.0, abs=0.5)
    cert = pd.read_csv(results / "certificate" / "trial" / "certificate.csv")
    assert cert["passed"].all() and set(cert["variable"]) == {"age_yr", "sex"}
    evidence = json.loads((results / "evidence" / "evidence_final.json").read_text())
    assert evidence["cohort"]["fraction_passed"] == 1.0
    assessment = _assessment(results)
    assert assessment["equivalency_of_input_parameters"] == "pass"
    comparison = pd.read_csv(results / "evidence" / "populations_comparison.csv")
    assert set(comparison["population"]) == {"real-world: TVT"} and "differs" in comparison
    html = (tiny_run / "reports" / "ci_tiny" / "credibility_report.html").read_text()
    for anchor in (
        'id="certificate-trial"',
        'id="certificate-tvt_registry"',
        'id="populations-comparison"',
    ):
        assert anchor in html, anchor


def test_calibration_runs_on_the_population_spec_not_on_a_selected_cohort(tmp_path):
    """A cohort selected to the enrolled population's baseline table is not where calibration
    rows (other studies) are simulated: the calibrate stage takes the spec's own first
    patients; a re-weighted cohort is the spec's sample, so the two agree there."""
    import cohorts
    from isct.stages.calibrate import calibration_patients

    population = "cohorts/populations/tavr_severe_as.yaml"
    spec = cohorts.load_spec(REPO_ROOT / population)
    store = tmp_path / "cohort.zarr"
    targets = "cohorts/targets/evolut_low_risk.yaml"
    base = {
        "trial": {"name": "calpatients", "seed": 5},
        "cohort": {"population": population, "n": 200},
        "model": {"name": "orifice"},
        "arms": [{"name": "a", "device": {"eoa_cm2": 1.5}}],
        "endpoints": ["mean_gradient_mmhg"],
        "uncertainty": {"enabled": False},
        "sensitivity": {"enabled": False},
        "credibility": {"plan": None, "comparators": None},
    }
    candidates = cohorts.sample(spec, 4000, seed=5)
    matched = cohorts.match(
        candidates, cohorts.load_targets(REPO_ROOT / targets), method="select", size=200
    )
    matched.write(store)
    selected = Trial.from_dict(
        {**base, "cohort": {**base["cohort"], "match": {"targets": targets, "method": "select"}}},
        workdir=REPO_ROOT,
    )
    got = calibration_patients(selected, str(store), 50)
    own = cohorts.sample(spec, 50, seed=5)
    np.testing.assert_array_equal(got["age_yr"].values, own["age_yr"].values)
    cohort_ages = xr.open_zarr(store, consolidated=False)["age_yr"].values[:50]
    assert not np.array_equal(got["age_yr"].values, cohort_ages)
    assert "select" in got.attrs["calibration_patients"]

    cohorts.write_cohort(spec, 200, store, seed=5)
    plain = Trial.from_dict(base, workdir=REPO_ROOT)
    np.testing.assert_array_equal(
        calibration_patients(plain, str(store), 50)["age_yr"].values, own["age_yr"].values
    )


def test_isct_run_shares_one_cluster_among_its_stages(tiny_run):
    """The stages of one `isct run` connect to the cluster it started: none starts its own
    scheduler (each would show one in its log)."""
    logs = tiny_run / "results" / "ci_tiny" / "logs"
    for stage in ("calibrate", "simulate", "uq", "sensitivity"):
        text = (logs / f"{stage}.log").read_text()
        assert "Scheduler at:" not in text, stage
    assert "isct.evaluator" in (logs / "calibrate.log").read_text()  # the stage did run


def test_isct_run_runs_every_stage_in_one_process(tiny_run):
    """`isct run` runs the stages inside the Snakemake process (no new Python process per
    stage): every stage log names the same process."""
    logs = tiny_run / "results" / "ci_tiny" / "logs"
    pids = {}
    for stage in ("cohort", "calibrate", "simulate", "uq", "sensitivity", "credibility", "report"):
        found = re.findall(r"stage runs in process (\d+)", (logs / f"{stage}.log").read_text())
        assert len(found) == 1, stage
        pids[stage] = found[0]
    assert len(set(pids.values())) == 1, pids


def test_isct_run_starts_uq_sensitivity_and_credibility_together(tiny_run):
    """Once the trial is simulated, UQ, sensitivity and credibility run at the same time on
    the run's cluster (on 2 cores, a claim of a core each kept one of them waiting): each
    starts before any of them ends."""
    import csv
    from datetime import datetime

    results = tiny_run / "results" / "ci_tiny"
    starts, ends = {}, {}
    for stage in ("uq", "sensitivity", "credibility"):
        first = (results / "logs" / f"{stage}.log").read_text().splitlines()[0]
        starts[stage] = datetime.strptime(first[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        with (results / "benchmarks" / f"{stage}.tsv").open() as fh:
            ends[stage] = starts[stage] + float(next(csv.DictReader(fh, delimiter="\t"))["s"])
    assert max(starts.values()) < min(ends.values()), (starts, ends)
