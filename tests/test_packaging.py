"""Packaging: pins agree, lint is clean, and the wheel runs a trial from any directory."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY = REPO_ROOT / "tests" / "data" / "tiny.yaml"
PACKAGES = ("isct", "cohorts", "models", "credibility")
#: Files a wheel must hold for a trial to run from it (the workflow copy and package data).
WHEEL_FILES = (
    "isct/_workflow/Snakefile",
    "isct/_workflow/environment.yml",
    "isct/_workflow/workflow/schemas/config.schema.yaml",
    "isct/_workflow/config/config.yaml",
    "isct/_workflow/config/templates/blank/model/solver.py",
    "cohorts/population.schema.yaml",
    "cohorts/populations/tavr_severe_as.yaml",
    "models/card.schema.yaml",
    "models/tavr/card.yaml",
    "credibility/plan.schema.yaml",
    "credibility/plans/tavr_small_annuli.yaml",
    "credibility/comparators/tavr.csv",
    "credibility/comparators/tavr_populations.csv",
    "credibility/templates/report.html.j2",
    "credibility/templates/report.css",
)


def _normalise(requirement: str) -> tuple[str, str]:
    name, _, bound = re.match(
        r"^([A-Za-z0-9_.\-\[\]]+)\s*(>=\s*(.+))?$", requirement.strip()
    ).groups()
    return name.split("[")[0].lower().replace("_", "-"), (bound or "").strip()


def test_environment_and_pyproject_agree():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    conda = [
        d for d in env["dependencies"] if isinstance(d, str) and not d.startswith(("python", "pip"))
    ]
    assert dict(map(_normalise, project["dependencies"])) == dict(map(_normalise, conda))
    python_pin = next(
        d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python")
    )
    assert python_pin.replace("python", "") == project["requires-python"]


def test_ruff_lint_and_format_are_clean():
    ruff = Path(sys.executable).parent / "ruff"
    for args in (["check", "."], ["format", "--check", "."]):
        proc = subprocess.run([ruff, *args], capture_output=True, text=True, cwd=REPO_ROOT)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


def _source_copy(dest: Path) -> Path:
    """The checkout's sources without run products, caches or venvs (the build writes into
    the tree it builds, which must not be the checkout)."""
    ignore = shutil.ignore_patterns(
        ".git", ".venv*", "results", "reports", ".snakemake", "__pycache__", "*.egg-info",
        "build", "dist", ".pytest_cache", ".ruff_cache", ".hypothesis", "out",
    )  # fmt: skip
    shutil.copytree(REPO_ROOT, dest, ignore=ignore)
    return dest


def _snapshot(folder: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*")} if folder.exists() else {}


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_runs_the_tiny_trial_in_its_working_directory(tmp_path, tiny_run):
    """Build the wheel, install it (not editable) into a new venv, run the tiny trial from a
    temporary directory: results and report land there, from the wheel's own workflow."""
    dist = tmp_path / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist),
         str(_source_copy(tmp_path / "src"))],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-3000:]
    [wheel] = dist.glob("isct-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [f for f in WHEEL_FILES if f not in names]
    assert not missing, f"the wheel lacks {missing}"
    for folder in ("rules", "schemas", "report"):
        assert any(n.startswith(f"isct/_workflow/workflow/{folder}/") for n in names), folder

    # A venv of its own with the wheel installed; the dependencies (numpy, snakemake, ...)
    # come from this test's environment through a .pth line appended *after* the venv's
    # site-packages, whose own .pth files (the editable install's finder) are not run.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--no-index", "-q", str(wheel)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-3000:]
    where = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    site = Path(where.stdout.strip())
    (site / "zz_isct_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    run_dir = tmp_path / "anywhere"
    run_dir.mkdir()
    shutil.copy(TINY, run_dir / "tiny.yaml")  # its paths name the built-in files
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = subprocess.run(
        [python, "-c", "import json, importlib, isct.resources as r; print(json.dumps({"
         "**{p: importlib.import_module(p).__file__ for p in ('isct', 'cohorts', 'models', "
         "'credibility')}, 'workflow': str(r.workflow_dir()), 'source': str(r.source_root())}))"],
        capture_output=True, text=True, cwd=run_dir, env=env,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr[-3000:]
    found = json.loads(probe.stdout)
    for package in PACKAGES:
        assert Path(found[package]).is_relative_to(site), (package, found[package])
    assert Path(found["workflow"]) == site / "isct" / "_workflow"
    assert found["source"] == "None"

    repo_before = {d: _snapshot(REPO_ROOT / d) for d in ("results", "reports")}
    run = subprocess.run(
        [venv / "bin" / "isct", "run", "tiny.yaml", "--cores", "2"],
        capture_output=True, text=True, cwd=run_dir, env=env, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-6000:]
    assert (run_dir / "reports" / "ci_tiny" / "credibility_report.html").stat().st_size > 10_000
    results = run_dir / "results" / "ci_tiny"
    manifest = json.loads((results / "manifest.json").read_text())
    assert manifest["config"]["path"] == "tiny.yaml"
    for name, entry in manifest["inputs"].items():  # the wheel's built-in files were read
        assert Path(entry["path"]).is_relative_to(site), (name, entry["path"])
    # nothing was written beside the installed package or into the checkout
    assert not [p for p in site.rglob("*") if p.name in ("results", "reports", ".snakemake")]
    assert {d: _snapshot(REPO_ROOT / d) for d in ("results", "reports")} == repo_before
    # and the installed package computes what the checkout computes
    wheel_outcomes = xr.open_zarr(results / "outcomes.zarr", consolidated=False)
    source_outcomes = xr.open_zarr(
        tiny_run / "results" / "ci_tiny" / "outcomes.zarr", consolidated=False
    )
    for name in ("status", "mean_gradient_mmhg", "eoa_cm2", "ppm_class"):
        np.testing.assert_array_equal(wheel_outcomes[name].values, source_outcomes[name].values)


def test_ci_and_cluster_scripts_parse():
    """`.ci/run` and the SLURM set-up script are valid bash (a broken `.ci/run` fails CI
    before any test runs)."""
    for script in (".ci/run", "tests/cluster/slurm-up.sh"):
        proc = subprocess.run(["bash", "-n", script], capture_output=True, text=True, cwd=REPO_ROOT)
        assert proc.returncode == 0, f"{script}: {proc.stderr}"
