"""Stale Snakemake locks after a hard kill are cleared, and only those (isct.locks)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml
import zarr
from conftest import wait_for

from isct.cli import main
from isct.config import named_files, set_named_file
from isct.locks import RECORDS, clear_stale_locks, lock_files

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY = REPO_ROOT / "tests" / "data" / "tiny.yaml"

# A stand-in for snakemake under run_recorded: writes a lock file as Snakemake does, then waits.
FAKE_SNAKEMAKE = (
    "import pathlib, time; d = pathlib.Path('.snakemake/locks'); d.mkdir(parents=True, "
    "exist_ok=True); (d / '0.output.lock').write_text('results/t/x.json'); time.sleep(300)"
)


def _records(workdir: Path) -> list[dict]:
    out = []
    for path in (workdir / RECORDS).glob("*.json"):
        try:
            out.append(json.loads(path.read_text()))
        except ValueError:
            pass
    return out


def _start_recorded_run(workdir: Path) -> subprocess.Popen:
    """A real run_recorded in its own process group, its lock recorded."""
    script = (
        "import os, sys\n"
        "from isct.locks import run_recorded\n"
        f"child = [sys.executable, '-c', {FAKE_SNAKEMAKE!r}]\n"
        "sys.exit(run_recorded(child, workdir='.', env=dict(os.environ)))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=workdir, start_new_session=True)
    assert wait_for(lambda: any(r["locks"] for r in _records(workdir)), 60, every=0.1)
    return proc


def _batches_done(store: Path) -> int:
    """Finished simulation batches of an outcomes store (0 while it is being created)."""
    try:
        return int(zarr.open_group(store, mode="r")["batch_done"][:].sum())
    except Exception:
        return 0


def _kill_hard(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.fixture
def killed_run(tmp_path) -> Path:
    """A run directory whose recorded run was SIGKILLed, leaving its lock behind."""
    _kill_hard(_start_recorded_run(tmp_path))
    assert [p.name for p in lock_files(tmp_path)] == ["0.output.lock"]
    return tmp_path


def test_the_locks_of_a_live_run_are_kept_and_cleared_once_it_is_killed(tmp_path):
    proc = _start_recorded_run(tmp_path)
    try:
        report = clear_stale_locks(tmp_path)
        assert report.removed == [] and [p.name for p in report.kept] == ["0.output.lock"]
        assert (tmp_path / ".snakemake" / "locks" / "0.output.lock").is_file()
    finally:
        _kill_hard(proc)
    report = clear_stale_locks(tmp_path)
    assert [p.name for p in report.removed] == ["0.output.lock"] and report.kept == []
    assert lock_files(tmp_path) == [] and _records(tmp_path) == []


def test_a_live_snakemake_process_in_the_directory_keeps_the_locks(killed_run):
    job = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(300)", "snakemake-job"], cwd=killed_run
    )
    try:
        assert wait_for(lambda: "snakemake-job" in " ".join(_cmdline(job.pid)), 30, every=0.1)
        report = clear_stale_locks(killed_run)
        assert report.removed == [] and len(report.kept) == 1
        assert any(f"pid {job.pid}" in reason for reason in report.reasons)
    finally:
        job.kill()
        job.wait()
    assert len(clear_stale_locks(killed_run).removed) == 1


def _cmdline(pid: int) -> list[str]:
    import psutil

    try:
        return psutil.Process(pid).cmdline()
    except psutil.Error:
        return []


def test_a_lock_rewritten_by_a_later_run_is_not_the_dead_runs(killed_run):
    lock = killed_run / ".snakemake" / "locks" / "0.output.lock"
    lock.unlink()
    lock.write_text("results/other/y.json\n")  # a later run, started after an --unlock
    report = clear_stale_locks(killed_run)
    assert report.removed == [] and report.kept == [lock] and lock.is_file()
    assert "written by no run isct knows to be dead" in report.reasons[-1]


def test_a_record_from_another_host_is_left_alone(killed_run):
    [path] = (killed_run / RECORDS).glob("*.json")
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "host": "another-host"}))
    report = clear_stale_locks(killed_run)
    assert report.removed == [] and len(report.kept) == 1
    assert any("another-host" in reason for reason in report.reasons)


def test_unlock_after_directory_reaches_snakemake(tmp_path):
    """`isct run CONFIG --directory D -- --unlock`: the arguments after -- go to Snakemake."""
    locks = tmp_path / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.output.lock").write_text(f"{tmp_path}/results/ci_tiny/cohort.zarr\n")
    proc = subprocess.run(
        [sys.executable, "-m", "isct", "run", str(TINY), "--directory", str(tmp_path),
         "--cores", "1", "--", "--unlock"],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "unrecognized arguments" not in proc.stderr
    assert lock_files(tmp_path) == []  # an unknown lock: only --unlock clears it
    assert not (tmp_path / "results").exists()  # nothing was run


def test_locks_no_record_explains_are_kept_with_a_hint(tmp_path, capsys):
    locks = tmp_path / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.output.lock").write_text("x\n")
    assert main(["run", str(TINY), "--directory", str(tmp_path), "--dry-run", "--cores", "1"]) == 0
    err = capsys.readouterr().err
    assert "holds locks isct cannot show to be stale" in err and "-- --unlock" in err
    assert (locks / "0.output.lock").is_file()


@pytest.mark.slow
def test_a_project_run_killed_hard_resumes_on_rerun_and_matches_a_clean_run(tmp_path, tiny_run):
    """`isct init --template tavr`, sized as the tiny trial; `isct run config.yaml` SIGKILLed
    (the whole process group) once it has simulated a batch; the same command again
    finishes, with the outcomes of a run never interrupted."""
    project = tmp_path / "project"
    assert main(["init", str(project), "--template", "tavr"]) == 0
    generated = yaml.safe_load((project / "config.yaml").read_text())
    config = yaml.safe_load(TINY.read_text())
    mine = named_files(generated)
    for key in named_files(config):  # the tiny trial, reading the project's copies of its files
        set_named_file(config, key, mine[key])
        assert (project / mine[key]).is_file(), key
    (project / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    command = [sys.executable, "-m", "isct", "run", "config.yaml", "--cores", "2"]
    results = project / "results" / "ci_tiny"

    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(
            command, cwd=project, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            started = wait_for(lambda: _batches_done(results / "outcomes.zarr") > 0, 600, every=0.1)
        finally:
            _kill_hard(first)
    assert started, (tmp_path / "first.log").read_text()[-3000:]
    done_at_kill = _batches_done(results / "outcomes.zarr")
    simulated = (results / "simulate.json").exists()
    assert lock_files(project), "the killed run left no lock to clear"
    assert not (results / "manifest.json").exists()

    second = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-6000:]
    assert "removed stale Snakemake locks" in second.stderr
    assert lock_files(project) == [] and _records(project) == []
    assert (project / "reports" / "ci_tiny" / "credibility_report.html").is_file()
    resumed = xr.open_zarr(results / "outcomes.zarr", consolidated=False)
    clean = xr.open_zarr(tiny_run / "results" / "ci_tiny" / "outcomes.zarr", consolidated=False)
    assert (resumed["status"].values >= 0).all()  # every cell was run
    if not simulated:  # the simulate stage resumed its store: finished batches kept
        last = json.loads(resumed.attrs["isct_last_run"])
        assert last["batches_skipped"] == done_at_kill
        assert last["batches_run"] == last["batches_total"] - done_at_kill
    for name in clean.data_vars:
        np.testing.assert_array_equal(resumed[name].values, clean[name].values, err_msg=name)
