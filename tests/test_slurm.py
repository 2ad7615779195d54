"""Trials on a real SLURM: Dask workers as batch jobs (dask-jobqueue), end to end.

These tests submit real jobs to the SLURM that ``tests/cluster/slurm-up.sh`` starts (one node,
this machine; ``.ci/run`` starts it in CI) and check them with ``squeue`` and ``scontrol``
(that SLURM keeps no accounting, so ``sacct`` has nothing to say). Without a reachable
SLURM they skip, saying so, and under ``CI=true`` they fail instead (``tests/conftest.py``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import xarray as xr
import yaml
from conftest import REPO, TINY, orifice_cohort, wait_for

from isct.cli import main
from isct.cluster import open_client
from isct.engine import simulate
from isct.jobqueue import JOB_RECORDS
from models.examples import OrificeModel

pytestmark = [
    pytest.mark.slurm,
    # Snakemake marks directory() outputs with this file; zarr rightly ignores it
    pytest.mark.filterwarnings("ignore:Object at .snakemake_timestamp"),
]

SHIPPED = REPO / "config" / "clusters" / "slurm.yaml"
#: Stores of a trial whose every variable must be bit-identical to a LocalCluster run.
STORES = ("cohort.zarr", "outcomes.zarr", "uq.zarr", "sa.zarr")


def slurm_profile(tmp_path: Path, **changes) -> Path:
    """The shipped ``config/clusters/slurm.yaml`` with ``changes`` (``options`` merged), on
    the loopback interface (this SLURM's node is this machine)."""
    spec = yaml.safe_load(SHIPPED.read_text())
    options = {**spec["options"], "interface": "lo", **changes.pop("options", {})}
    spec = {**spec, **changes, "options": options}
    if "adapt" in spec:
        spec.pop("jobs", None)
    path = tmp_path / "slurm.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def queued(name_prefix: str, states: str = "PENDING,RUNNING") -> list[tuple[str, str, str]]:
    """``(job id, name, state)`` of the jobs in ``squeue`` whose name starts with the prefix."""
    proc = subprocess.run(
        ["squeue", "-h", "-t", states, "-o", "%i|%j|%T"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    rows = [tuple(line.split("|")) for line in proc.stdout.split()]
    return [r for r in rows if r[1].startswith(name_prefix)]


def job_fields(job_id: str) -> dict[str, str]:
    """``scontrol show job`` as a mapping (JobState, JobName, WorkDir, ...)."""
    proc = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    pairs = (item.split("=", 1) for item in proc.stdout.split() if "=" in item)
    return {key: value for key, value in pairs}


def job_record(workdir: Path) -> dict | None:
    """The run's record of its batch jobs (name, ids), while the run lasts."""
    for path in (workdir / JOB_RECORDS).glob("*.json"):
        try:
            return json.loads(path.read_text())
        except ValueError:  # being replaced
            return None
    return None


def batches_done(store: Path) -> int:
    try:
        return int(xr.open_zarr(store, consolidated=False)["batch_done"].values.sum())
    except (OSError, KeyError, ValueError):
        return 0


def assert_same_trial(run: Path, reference: Path) -> None:
    for name in STORES:
        got = xr.open_zarr(run / "results" / "ci_tiny" / name, consolidated=False)
        want = xr.open_zarr(reference / "results" / "ci_tiny" / name, consolidated=False)
        assert sorted(got.data_vars) == sorted(want.data_vars), name
        for var in want.data_vars:
            np.testing.assert_array_equal(
                got[var].values, want[var].values, err_msg=f"{name}:{var}"
            )


def isct_run(profile: Path) -> list[str]:
    return [sys.executable, "-m", "isct", "run", str(TINY), "--cores", "2",
            "--cluster-profile", str(profile)]  # fmt: skip


def test_tiny_trial_on_slurm_workers_survives_a_cancelled_job(tmp_path, tiny_run):
    """`isct run` of the tiny trial with two SLURM worker jobs; one is `scancel`ed while the
    stages compute; the run replaces it, completes, and its stores are bit-identical to a
    LocalCluster run's; no job of the run is left in the queue."""
    run = tmp_path / "run"
    run.mkdir()
    profile = slurm_profile(tmp_path, jobs=2, pending_timeout=120)
    seen_ids: set[str] = set()
    with open(tmp_path / "run.log", "w") as log:
        proc = subprocess.Popen(
            isct_run(profile), cwd=run, stdout=log, stderr=subprocess.STDOUT, text=True
        )
        try:
            record = wait_for(lambda: (r := job_record(run)) and len(r["job_ids"]) == 2 and r, 120)
            assert record, (tmp_path / "run.log").read_text()[-3000:]
            name = record["job_name"]
            running = wait_for(lambda: len(queued(name, "RUNNING")) == 2, 120)
            assert running, queued(name, "PENDING,RUNNING,COMPLETING")
            fields = job_fields(record["job_ids"][0])
            assert fields["JobName"] == name and fields["JobState"] == "RUNNING"
            assert fields["WorkDir"] == str(run.resolve())  # submitted from the run directory
            # cancel a worker job once the stages' Dask work has started (the calibrate
            # stage's design runs appear)
            runs = run / "results" / "ci_tiny" / "calibration" / "runs"
            assert wait_for(lambda: runs.is_dir() and any(runs.iterdir()), 240, every=0.2), (
                "no Dask stage started"
            )
            victim = record["job_ids"][1]
            # the stages (the Snakemake process) wait while the run's cluster, in the isct
            # process, notices the lost job and submits its replacement: however quickly
            # the rest of the trial would run, the replacement is seen while the run lasts
            stages = next(
                c for c in psutil.Process(proc.pid).children() if "isct._snakemake" in c.cmdline()
            )
            subprocess.run(["scancel", victim], check=True)
            assert wait_for(lambda: job_fields(victim)["JobState"] == "CANCELLED", 30)
            stages.suspend()
            try:
                replaced = wait_for(
                    lambda: len(set((job_record(run) or {}).get("job_ids", [])) - {victim}) >= 2,
                    120,
                )
                seen_ids.update((job_record(run) or {}).get("job_ids", []))
            finally:
                stages.resume()
            assert replaced, f"the cancelled job was not replaced: {job_record(run)}"
            while proc.poll() is None:  # collect the ids the run submits
                seen_ids.update((job_record(run) or {}).get("job_ids", []))
                time.sleep(0.5)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    assert proc.returncode == 0, (tmp_path / "run.log").read_text()[-6000:]
    assert len(seen_ids) >= 3, f"the cancelled job was not replaced: {sorted(seen_ids)}"
    assert queued(name) == []
    assert job_record(run) is None  # a clean end deletes the record
    assert sorted(p.name for p in (run / "logs" / "cluster").glob("*.err"))  # job logs kept
    assert_same_trial(run, tiny_run)


def test_a_killed_run_resumes_on_slurm_with_what_is_missing_and_leaves_no_jobs(tmp_path, tiny_run):
    """`isct run` on SLURM workers SIGKILLed (the whole process group) once it has simulated
    a batch: its worker jobs outlive it (and finish the batch each holds). The same command
    cancels them, runs only the stages and batches that are missing, and leaves no job
    behind; the stores are bit-identical to a LocalCluster run's."""
    run = tmp_path / "run"
    run.mkdir()
    profile = slurm_profile(tmp_path, jobs=2, pending_timeout=120)
    outcomes = run / "results" / "ci_tiny" / "outcomes.zarr"
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(
            isct_run(profile), cwd=run, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            started = wait_for(lambda: batches_done(outcomes) > 0, 300, every=0.2)
            record = job_record(run)
        finally:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    assert started and record, (tmp_path / "first.log").read_text()[-3000:]
    orphans = queued(record["job_name"])
    assert orphans, "the killed run's worker jobs ended by themselves: nothing to clean up"
    # the orphaned workers finish the task each holds (their regions are kept), then sit idle
    counts = [batches_done(outcomes)]
    while len(counts) < 6 or len(set(counts[-6:])) > 1:
        assert len(counts) < 120, counts
        time.sleep(0.5)
        counts.append(batches_done(outcomes))
    done_at_kill = counts[-1]
    simulated = (run / "results" / "ci_tiny" / "simulate.json").exists()

    second = subprocess.run(isct_run(profile), cwd=run, capture_output=True, text=True,
                            timeout=600)  # fmt: skip
    log = second.stdout + second.stderr
    assert second.returncode == 0, log[-6000:]
    assert "cancelled the batch jobs left by a run" in second.stderr
    assert record["job_name"] in second.stderr
    assert queued(record["job_name"]) == [] and queued("isct-") == []
    assert job_record(run) is None
    for stage in ("cohort", "calibrate"):  # finished before the kill: not run again
        assert f"rule {stage}:" not in log, stage
    assert "rule report:" in log
    resumed = xr.open_zarr(outcomes, consolidated=False)
    if not simulated:  # the simulate stage resumed its store: finished batches kept
        last = json.loads(resumed.attrs["isct_last_run"])
        assert last["batches_skipped"] == done_at_kill
        assert last["batches_run"] == last["batches_total"] - done_at_kill
    assert_same_trial(run, tiny_run)


def test_adaptive_jobs_grow_under_load_and_shrink_when_idle(tmp_path, monkeypatch):
    """`adapt: {minimum: 1, maximum: 2}`: one job at rest, two while a simulation has
    seconds of work queued, one again soon after it ends; every value is the model's
    closed form computed here in one call."""
    monkeypatch.chdir(tmp_path)
    adapt = {"minimum": 1, "maximum": 2, "interval": "500ms", "wait_count": 4}
    profile = slurm_profile(tmp_path, adapt=adapt, pending_timeout=120)
    cohort = orifice_cohort(60)
    arms = [{"name": "small", "device": {"eoa_cm2": 1.2}}, {"name": "large", "device": {}}]
    counts: list[int] = []
    stop = threading.Event()
    with open_client(profile=profile) as client:
        name = job_record(tmp_path)["job_name"]
        assert len(queued(name)) == 1  # the minimum, at rest

        def watch():
            while not stop.is_set():
                counts.append(len(queued(name, "RUNNING")))
                time.sleep(0.5)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:  # 40 batches of 0.4 s: seconds of work for one worker
            out = simulate(
                cohort, "orifice", arms, tmp_path / "o.zarr", client=client, batch_size=3,
                settings={"delay_s": 0.4}, progress=False,
            )  # fmt: skip
        finally:
            stop.set()
            watcher.join()
        assert max(counts) == 2, counts  # grew under load
        shrunk = wait_for(lambda: len(queued(name)) == 1, 60)
        assert shrunk, queued(name)  # and shrank when idle
    assert queued(name) == []
    assert (out["status"].values == 0).all()
    model = OrificeModel()
    patients = {k: cohort[k].values for k in model.inputs}
    for i, arm in enumerate(arms):  # the closed form, computed here in one batch
        want = model.simulate(patients, arm["device"], {})
        np.testing.assert_array_equal(
            out["mean_gradient_mmhg"].values[i], want["mean_gradient_mmhg"]
        )


def test_a_stage_runs_as_a_slurm_job_through_the_snakemake_plugin(tmp_path):
    """`isct run CONFIG -- --profile config/clusters/snakemake-slurm TARGET`: the cohort
    stage is submitted by snakemake-executor-plugin-slurm as a SLURM job, followed with
    `squeue` (this SLURM keeps no accounting for `sacct`), and writes its outputs."""
    proc = subprocess.run(
        [sys.executable, "-m", "isct", "run", str(TINY), "--cores", "1", "--",
         "--profile", "config/clusters/snakemake-slurm", "results/ci_tiny/cohort_check.csv"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    [job_id] = re.findall(r"submitted with SLURM jobid (\d+)", log)
    job_log = tmp_path / ".snakemake" / "slurm_logs" / "rule_cohort" / f"{job_id}.log"
    assert job_log.is_file(), log[-3000:]
    assert "localrule cohort" in job_log.read_text()  # the job ran the stage itself
    assert (tmp_path / "results" / "ci_tiny" / "cohort.zarr").is_dir()
    assert not (tmp_path / "results" / "ci_tiny" / "outcomes.zarr").exists()


BLOCKER = "isct-test-blocker"


@pytest.mark.parametrize(
    ("case", "changes", "key", "says"),
    [
        ("unknown partition", {"options": {"queue": "nosuch"}}, "options.queue",
         "invalid partition"),
        ("refused account", {"options": {"queue": "accounts", "account": "refused"}},
         "options.account", "account"),
        ("pending past the timeout", {"pending_timeout": 6}, "pending_timeout",
         "no worker job started in time"),
        ("workers that cannot start", {"pending_timeout": 8,
         "options": {"python": "/nonexistent/python3"}}, "options",
         "no worker reached the scheduler"),
    ],
)  # fmt: skip
def test_bad_cluster_input_is_one_error_naming_the_key_and_cancels_the_jobs(
    case, changes, key, says, tmp_path, capsys
):
    opts = {**changes.get("options", {}), "job_name": "isct-bad"}
    profile = slurm_profile(tmp_path, **{**changes, "options": opts})
    blocker = None
    if case == "pending past the timeout":  # the node is taken: the worker jobs pend
        blocker = subprocess.run(
            ["sbatch", "--parsable", "--exclusive", "-J", BLOCKER, "--wrap", "sleep 300"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        assert wait_for(lambda: job_fields(blocker)["JobState"] == "RUNNING", 60)
    try:
        t0 = time.monotonic()
        code = main(["run", str(TINY), "--cluster-profile", str(profile), "--cores", "1",
                     "--directory", str(tmp_path / "run")])  # fmt: skip
        took = time.monotonic() - t0
        err = capsys.readouterr().err
        assert code == 2, err
        [line] = [x for x in err.splitlines() if x.startswith("isct: error:")]
        assert f"{profile}: key '{key}'" in line and says in line, line
        assert "Traceback" not in err
        assert took < 60, took
        assert queued("isct-bad") == []  # every job it submitted is cancelled
        assert not (tmp_path / "run" / "results").exists()  # nothing ran
    finally:
        if blocker:
            subprocess.run(["scancel", blocker])
