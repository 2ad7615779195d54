"""Fixtures and builders shared by the test modules.

* paths of the shipped inputs the tests use (tiny trial, TAVR population, comparators, plan);
* :func:`synthetic_trial` — a small cohort and outcomes with the shapes of a trial's stores;
* :func:`orifice_cohort` — patients for the closed-form ``orifice`` example model;
* ``cluster`` / ``client`` — a real two-worker Dask ``LocalCluster`` per test module;
* ``tiny_run`` — one clean run of the tiny trial (the whole DAG) per session;
* :func:`wait_for` — poll a condition until it holds or a timeout passes;
* the ``slurm`` marker: such a test skips, saying why, when no SLURM is reachable, and fails
  instead under ``CI=true`` (where ``.ci/run`` starts one with ``tests/cluster/slurm-up.sh``).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from distributed import Client, LocalCluster

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "data" / "tiny.yaml"
DEFAULT_CONFIG = REPO / "config" / "config.yaml"
TAVR_SPEC = REPO / "cohorts" / "populations" / "tavr_severe_as.yaml"
TAVR_CSV = REPO / "credibility" / "comparators" / "tavr.csv"
POP_CSV = REPO / "credibility" / "comparators" / "tavr_populations.csv"
PLAN = REPO / "credibility" / "plans" / "tavr_small_annuli.yaml"
ARMS = ["balloon_expandable", "self_expanding"]
#: The outcome variable the TAVR comparators' size_mm selects on (the model's size output).
SIZE = "valve_size_mm"
STATUS_ATTRS = {
    "flag_values": [0, 1, 2, 3],
    "flag_meanings": "ok invalid_input solver_failure timeout",
    "long_name": "simulation status",
}


#: Evidence that meets every goal of the default plan.
GOOD = {
    "provenance": {"stage_chain_mismatches": 0},
    "code_verification": {"order_error_abs": 0.05},
    "verification": {"gci_max_pct": 1.2},
    "simulation": {"solver_failure_fraction": 0.0},
    "reproducibility": {"resimulation_match": True},
    "model_card": {"n_assumptions": 7},
    "uq": {"n_uncertain_inputs": 5},
    "calibration": {
        "model_forms": {"model_to_best_rms_z_ratio": 1.0},
        "leave_one_study_out": {"rms_z": 0.9},
    },
    "validation": {
        "n_comparators": 22,
        "n_patients": 12000.0,
        "n_strata": 14,
        "fraction_consistent": 0.9,
        "qoi_coverage": 1.0,
    },
    "applicability": {"max_abs_smd": 0.1, "min_fraction_within": 0.9},
    "cohort": {"matched": True, "all_passed": True, "fraction_passed": 1.0, "max_abs_smd": 0.0},
}


def synthetic_trial(n: int = 400, seed: int = 1) -> tuple[xr.Dataset, xr.Dataset]:
    """A small cohort and outcomes Dataset with the shapes of the TAVR trial contract."""
    rng = np.random.default_rng(seed)
    sex = rng.integers(0, 2, n).astype(np.int8)
    area = np.where(sex == 1, rng.normal(512, 110, n), rng.normal(405, 75, n))
    bsa = rng.normal(1.8 + 0.2 * sex, 0.15, n)
    cohort = xr.Dataset(
        {
            "sex": (
                "patient",
                sex,
                {"units": "1", "flag_values": [0, 1], "flag_meanings": "female male"},
            ),
            "age_yr": ("patient", rng.normal(79, 6, n), {"units": "yr"}),
            "bmi_kg_m2": ("patient", rng.normal(27, 5, n), {"units": "kg m-2"}),
            "bsa_m2": ("patient", bsa, {"units": "m2"}),
            "annulus_area_mm2": ("patient", area, {"units": "mm2"}),
            "annulus_perimeter_mm": (
                "patient",
                1.01 * 2 * np.sqrt(np.pi * np.clip(area, 100, None)),
                {"units": "mm"},
            ),
            "sampling_weight": ("patient", np.ones(n), {"units": "1"}),
        },
        coords={"patient": np.arange(n, dtype=np.int64)},
    )
    size = np.stack([np.digitize(area, [345, 430, 546]), np.digitize(area, [380, 480, 600])])
    size_mm = np.stack([np.array([20, 23, 26, 29])[size[0]], np.array([23, 26, 29, 34])[size[1]]])
    eoa = np.stack([0.0036 * area, 0.0042 * area]) * rng.lognormal(0, 0.1, (2, n))
    grad = 22.0 / eoa**1.2
    net = 0.35 * grad
    eoai = eoa / bsa
    ppm = np.where(eoai <= 0.65, 2, np.where(eoai <= 0.85, 1, 0)).astype(np.int8)
    status = np.zeros((2, n), dtype=np.int8)
    status[0, :3] = 2
    status[1, 5] = 1
    bad = status != 0
    eoa[bad] = grad[bad] = eoai[bad] = net[bad] = np.nan
    ppm[bad] = -1
    dims = ("arm", "patient")
    outcomes = xr.Dataset(
        {
            "mean_gradient_mmhg": (dims, grad, {"units": "mmHg"}),
            "net_mean_gradient_mmhg": (dims, net, {"units": "mmHg"}),
            "eoa_cm2": (dims, eoa, {"units": "cm^2"}),
            "eoai_cm2_m2": (dims, eoai, {"units": "cm^2/m^2"}),
            "valve_size_mm": (dims, size_mm.astype(float), {"units": "mm"}),
            "ppm_class": (
                dims,
                ppm,
                {"flag_values": [-1, 0, 1, 2], "flag_meanings": "missing none moderate severe"},
            ),
            "status": (dims, status, STATUS_ATTRS),
        },
        coords={"arm": ARMS, "patient": np.arange(n, dtype=np.int64)},
    )
    return cohort, outcomes


def orifice_cohort(n: int, seed: int = 1) -> xr.Dataset:
    """Patients with the inputs of the ``orifice`` example model."""
    rng = np.random.default_rng(seed)
    return xr.Dataset(
        {
            "svi_ml_m2": ("patient", rng.normal(39, 7, n)),
            "bsa_m2": ("patient", rng.normal(2.0, 0.2, n)),
            "heart_rate_bpm": ("patient", rng.normal(70, 12, n)),
        },
        coords={"patient": np.arange(n)},
    )


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as c:
        yield c


@pytest.fixture
def client(cluster):
    with Client(cluster) as c:
        yield c


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A clean run of the tiny trial (the whole DAG) in a temporary run directory."""
    workdir = tmp_path_factory.mktemp("trial")
    proc = subprocess.run(
        [sys.executable, "-m", "isct.cli", "run", str(TINY), "--cores", "2"],
        capture_output=True,
        text=True,
        cwd=workdir,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return workdir


@functools.cache
def slurm_unreachable() -> str | None:
    """Why no SLURM can run a job here, or None when a partition has a node ready for one."""
    missing = [c for c in ("sinfo", "sbatch", "squeue", "scancel") if shutil.which(c) is None]
    if missing:
        return f"no SLURM commands on PATH ({', '.join(missing)} missing)"
    try:
        proc = subprocess.run(
            ["sinfo", "-h", "-o", "%a %T"], capture_output=True, text=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 20 s (is slurmctld running?)"
    if proc.returncode != 0:
        return f"sinfo failed: {' '.join(proc.stderr.split())[:300]}"
    ready = {"idle", "mixed", "allocated", "completing"}
    if not any(line.split()[1:] and line.split()[1] in ready and line.startswith("up")
               for line in proc.stdout.splitlines()):  # fmt: skip
        return f"no partition is up with a node ready (sinfo: {' '.join(proc.stdout.split())})"
    return None


def pytest_runtest_setup(item):
    if item.get_closest_marker("slurm") is None:
        return
    reason = slurm_unreachable()
    if reason is None:
        return
    message = (
        f"no SLURM reachable: {reason}; start a one-node SLURM with tests/cluster/slurm-up.sh "
        "(as root)"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} [CI=true: the slurm tests must run, not skip]", pytrace=False)
    pytest.skip(message)


def wait_for(predicate, timeout: float, every: float = 0.5):
    """Call ``predicate`` every ``every`` seconds until it returns something true (returned),
    or ``timeout`` seconds pass (None)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    return None
