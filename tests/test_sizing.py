"""Sequential sizing in the workflow: waves, the stop, resume, worker counts, bad configs."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr
import yaml
from conftest import REPO

from isct.engine import simulate
from isct.errors import ConfigError
from isct.sizing import looks, run_sized
from isct.trial import Trial, load_config

SIZED = REPO / "tests" / "data" / "tiny_sized.yaml"


def test_looks_are_the_first_patients_in_waves_up_to_n_max():
    assert looks(16, 16, 64) == [16, 32, 48, 64]
    assert looks(100, 250, 1000) == [100, 350, 600, 850, 1000]
    assert looks(64, 16, 64) == [64]


def _trial(**sizing) -> Trial:
    config = yaml.safe_load(SIZED.read_text())
    config["sizing"].update(sizing)
    for key in ("calibration", "uncertainty", "sensitivity"):
        config[key] = {"enabled": False}
    return Trial.from_dict(config, workdir=REPO)


def _pool(trial: Trial, path) -> str:
    import cohorts

    spec = cohorts.load_spec(REPO / trial["cohort"]["population"])
    cohorts.write_cohort(spec, trial["cohort"]["n"], path, seed=trial.seed)
    return str(path)


def _sized(trial, tmp, workers, monkeypatch, before=None):
    monkeypatch.setenv("ISCT_WORKERS", str(workers))
    tmp.mkdir()
    pool = _pool(trial, tmp / "pool.zarr")
    if before is not None:  # a run interrupted after `before` patients of its waves
        simulate(
            pool, trial.model, trial.arms, tmp / "waves.zarr", batch_size=16,
            settings=trial.settings, limit=before, progress=False,
        )  # fmt: skip
    return run_sized(
        trial,
        pool=pool,
        waves=str(tmp / "waves.zarr"),
        cohort_out=str(tmp / "cohort.zarr"),
        outcomes_out=str(tmp / "outcomes.zarr"),
        summary=str(tmp / "sizing.json"),
    )


@pytest.mark.slow
def test_the_stop_is_deterministic_for_any_worker_count_and_after_a_resume(tmp_path, monkeypatch):
    """For a seed, the looks and the stop are the same with 1 or 2 workers and when the
    waves store already holds part of the run (an interrupted run resumed mid-way)."""
    trial = _trial(half_width=0.8)
    one = _sized(trial, tmp_path / "one", 1, monkeypatch)
    two = _sized(trial, tmp_path / "two", 2, monkeypatch)
    resumed = _sized(trial, tmp_path / "resumed", 2, monkeypatch, before=32)
    assert one["stop"]["n"] < trial["cohort"]["n"] and one["stop"]["reason"] == "target"
    assert len(one["looks"]) > 1  # it took more than one wave
    for other in (two, resumed):
        assert json.dumps(other["looks"]) == json.dumps(one["looks"])
        assert other["stop"] == one["stop"]
    # the trial is the first n_stop patients: cohort and outcomes, copied not re-simulated
    n = one["stop"]["n"]
    cohort = xr.open_zarr(tmp_path / "one" / "cohort.zarr", consolidated=False)
    pool = xr.open_zarr(tmp_path / "one" / "pool.zarr", consolidated=False)
    outcomes = xr.open_zarr(tmp_path / "one" / "outcomes.zarr", consolidated=False)
    assert cohort.sizes["patient"] == outcomes.sizes["patient"] == n
    np.testing.assert_array_equal(cohort["age_yr"].values, pool["age_yr"].values[:n])
    waves = xr.open_zarr(tmp_path / "one" / "waves.zarr", consolidated=False)
    assert (waves["status"].values[:, n:] == -1).all()  # nobody beyond the stop was simulated
    np.testing.assert_array_equal(
        outcomes["mean_gradient_mmhg"].values, waves["mean_gradient_mmhg"].values[:, :n]
    )
    # a store that simulate() accepts as its own: nothing left to run
    again = simulate(
        str(tmp_path / "one" / "cohort.zarr"), trial.model, trial.arms,
        tmp_path / "one" / "outcomes.zarr", batch_size=16, settings=trial.settings,
        progress=False,
    )  # fmt: skip
    assert json.loads(again.attrs["isct_last_run"])["batches_run"] == 0
    # common random numbers: the paired difference is far less variable than unpaired arms
    assert one["crn"]["ratio"] > 2


@pytest.mark.slow
def test_a_target_never_met_stops_at_n_max_and_says_so(tmp_path, monkeypatch):
    result = _sized(_trial(half_width=0.01), tmp_path / "never", 2, monkeypatch)
    assert result["stop"]["reason"] == "n_max" and result["stop"]["n"] == 64
    assert "n_max reached (64 patients)" in result["stop"]["text"]
    assert result["saved_vs_n_max"] == 0


@pytest.mark.slow
def test_a_subgroup_nobody_is_in_runs_to_n_max_and_says_so(tmp_path, monkeypatch):
    result = _sized(_trial(where="annulus_area_mm2<0"), tmp_path / "empty", 2, monkeypatch)
    assert result["stop"]["reason"] == "n_max" and result["stop"]["pairs"] == 0
    assert all(look["pairs"] == 0 for look in result["looks"])


BAD = {
    "wave not a multiple of the batch": (
        {"wave": 10},
        r"'sizing.wave' is 10, not a multiple of 'simulation.batch_size' \(16\)",
    ),
    "unknown arm": (
        {"contrast": ["tavi", "self_expanding"]},
        r"'sizing.contrast' names \['tavi'\]",
    ),
    "n_max not the cohort": ({"n_max": 100}, r"'sizing.n_max' is 100 but 'cohort.n' is 64"),
    "unknown endpoint": ({"endpoint": "gradient"}, r"'sizing.endpoint' is 'gradient'"),
    "both event definitions": (
        {"category": "2", "threshold": ">=20"},
        r"'sizing': give 'category' or 'threshold', not both",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_sizing_config_names_the_key_and_what_is_allowed(case):
    edit, pattern = BAD[case]
    with pytest.raises(ConfigError, match=pattern):
        _trial(**edit)


def test_sizing_refuses_a_weighted_cohort_and_planning_needs_its_margin():
    config = yaml.safe_load(SIZED.read_text())
    config["cohort"]["match"]["method"] = "weights"
    with pytest.raises(ConfigError, match=r"'sizing' needs an unweighted cohort"):
        Trial.from_dict(config, workdir=REPO)
    config = yaml.safe_load(SIZED.read_text())
    del config["planning"][1]["margin"]
    with pytest.raises(ConfigError, match=r"'planning\[1\]': a non-inferiority design needs"):
        Trial.from_dict(config, workdir=REPO)


@pytest.mark.slow
def test_a_sized_trial_runs_end_to_end_and_reports_its_stop(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "isct.cli", "run", str(SIZED), "--cores", "2"]
        + ["--directory", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    name = load_config(SIZED)["trial"]["name"]
    results = tmp_path / "results" / name
    sizing = json.loads((results / "sizing" / "sizing.json").read_text())
    n = sizing["stop"]["n"]
    assert xr.open_zarr(results / "cohort.zarr", consolidated=False).sizes["patient"] == n
    assert xr.open_zarr(results / "outcomes.zarr", consolidated=False).sizes["patient"] == n
    # the enrolled population's certificate, of the patients kept
    assert sizing["certificate"]["n_patients"] == n and sizing["certificate"]["n_targets"] == 2
    html = (tmp_path / "reports" / name / "credibility_report.html").read_text()
    assert (
        'id="sizing-summary"' in html
        and 'id="trial-planning"' in html
        and 'id="planning-table"' in html
    )
    assert sizing["stop"]["text"].split(" at look")[0] in html
    planning = (results / "evidence" / "planning.csv").read_text()
    assert "non-inferiority" in planning and "superiority" in planning
    # the whole chain verifies, the sized cohort included
    verify = subprocess.run(
        [sys.executable, "-m", "isct.cli", "verify", str(results)],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stdout[-3000:] + verify.stderr[-3000:]


def test_prefix_store_refuses_other_patients_and_unfinished_batches(tmp_path, monkeypatch):
    import cohorts
    from isct.engine import prefix_store
    from isct.errors import SimulationIncompleteError, StoreMismatchError

    monkeypatch.setenv("ISCT_WORKERS", "1")
    spec = cohorts.load_spec(REPO / "cohorts" / "populations" / "tavr_severe_as.yaml")
    cohorts.write_cohort(spec, 48, tmp_path / "pool.zarr", seed=1)
    arms = [{"name": "a", "device": {"eoa_cm2": 1.5}}]
    simulate(
        str(tmp_path / "pool.zarr"), "orifice", arms, tmp_path / "waves.zarr",
        batch_size=16, limit=16, progress=False,
    )  # fmt: skip
    head = xr.open_zarr(tmp_path / "pool.zarr", consolidated=False).isel(patient=slice(0, 32))
    for var in head.variables.values():
        var.encoding = {}
    head.to_zarr(tmp_path / "head.zarr", consolidated=False)
    with pytest.raises(SimulationIncompleteError, match="1 batches of the first 32 patients"):
        prefix_store(tmp_path / "waves.zarr", tmp_path / "head.zarr", "orifice", tmp_path / "o")
    other = head.isel(patient=slice(1, 17))
    other.to_zarr(tmp_path / "other.zarr", consolidated=False)
    with pytest.raises(StoreMismatchError, match="not the first patients"):
        prefix_store(tmp_path / "waves.zarr", tmp_path / "other.zarr", "orifice", tmp_path / "o")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("copy_chunks", [True, False])
def test_prefix_store_is_the_store_simulated_for_the_first_patients(
    tmp_path, monkeypatch, copy_chunks
):
    """The sized trial's outcomes, cut from the waves store (chunk files copied, or
    re-encoded when the layout is not the engine's), read as the store simulated for the
    first n patients, a batch cut at the edge included, and resume with nothing to run."""
    import cohorts
    import isct.engine as engine

    if not copy_chunks:
        monkeypatch.setattr(engine, "_copy_chunks", lambda *a, **k: False)
    monkeypatch.setenv("ISCT_WORKERS", "1")
    spec = cohorts.load_spec(REPO / "cohorts" / "populations" / "tavr_severe_as.yaml")
    cohorts.write_cohort(spec, 48, tmp_path / "pool.zarr", seed=1)
    arms = [
        {"name": "a", "device": {"eoa_cm2": 1.5}},
        {"name": "b", "device": {"eoa_cm2": 1.8}},
    ]
    opts = {"batch_size": 16, "progress": False}
    simulate(str(tmp_path / "pool.zarr"), "orifice", arms, tmp_path / "waves.zarr", **opts)
    head = xr.open_zarr(tmp_path / "pool.zarr", consolidated=False).isel(patient=slice(0, 40))
    for var in head.variables.values():
        var.encoding = {}
    head.to_zarr(tmp_path / "head.zarr", consolidated=False)
    # a stray file among the chunks (a writer's temporary one) is not copied as data
    (tmp_path / "waves.zarr" / "status" / "c" / "0" / ".tmp-0").write_bytes(b"junk")
    cut = engine.prefix_store(
        tmp_path / "waves.zarr", tmp_path / "head.zarr", "orifice", tmp_path / "o"
    )
    direct = simulate(str(tmp_path / "head.zarr"), "orifice", arms, tmp_path / "d.zarr", **opts)
    assert cut.sizes == direct.sizes and cut.sizes["patient"] == 40
    xr.testing.assert_identical(cut.drop_attrs(), direct.drop_attrs())
    assert cut.attrs["isct_identity"] == direct.attrs["isct_identity"]
    assert set(cut.attrs) == set(direct.attrs)
    again = simulate(str(tmp_path / "head.zarr"), "orifice", arms, tmp_path / "o", **opts)
    assert json.loads(again.attrs["isct_last_run"])["batches_run"] == 0
    assert not (tmp_path / "o.partial").exists()
    assert not list((tmp_path / "o").rglob(".tmp-*"))
