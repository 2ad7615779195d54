"""The ``isct`` command line: run directory, argument order around ``--``, built-in configs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from isct.cli import _split_snakemake_args, main
from isct.resources import workflow_dir
from isct.runner import _snakemake_profiles_found, _stage_executor

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY = REPO_ROOT / "tests" / "data" / "tiny.yaml"


def test_arguments_after_double_dash_go_to_snakemake_whatever_the_option_order():
    for argv in (
        ["run", "c.yaml", "--directory", "d", "--", "--unlock"],
        ["run", "--directory", "d", "c.yaml", "--", "--unlock"],
        ["run", "--", "--unlock"],
    ):
        own, extra = _split_snakemake_args(argv)
        assert extra == ["--unlock"] and "--" not in own
    assert _split_snakemake_args(["info", "--", "-odd.zarr"]) == (["info", "--", "-odd.zarr"], [])


def test_simulate_runs_in_the_working_directory_up_to_the_simulate_stage(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "isct", "simulate", str(TINY), "--dry-run", "--cores", "1"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert "rule simulate:" in out or "localrule simulate:" in out
    assert "rule report:" not in out and "localrule report:" not in out
    assert (tmp_path / ".snakemake").is_dir()  # the working directory is the run directory


def test_a_missing_config_names_both_places_looked(tmp_path, capsys):
    assert main(["run", "nope.yaml", "--directory", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "nope.yaml: no such trial config" in err and str(workflow_dir() / "nope.yaml") in err
    assert not (tmp_path / ".snakemake").exists()


def test_snakemake_profile_folders_are_found_and_name_the_stage_executor(tmp_path, monkeypatch):
    """`-- --profile config/clusters/snakemake-slurm` works from any directory (Snakemake runs
    in the run directory): the folder is made absolute; its `executor` (or `--executor`)
    tells `isct run` that stages run as batch jobs, so it starts no LocalCluster for them."""
    monkeypatch.chdir(tmp_path)
    argv = _snakemake_profiles_found(["--profile", "config/clusters/snakemake-slurm", "-j", "2"])
    assert argv[1] == str(workflow_dir() / "config" / "clusters" / "snakemake-slurm")
    assert _stage_executor(argv) == "slurm"
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "config.yaml").write_text("jobs: 4\n")
    argv = _snakemake_profiles_found(["--workflow-profile", "mine"])
    assert argv[1] == str(tmp_path / "mine") and _stage_executor(argv) == "local"
    assert _stage_executor(["--executor=slurm"]) == _stage_executor(["-e", "slurm"]) == "slurm"
    assert _snakemake_profiles_found(["--profile", "by-name"]) == ["--profile", "by-name"]
