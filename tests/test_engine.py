"""The simulation engine with real Dask schedulers, workers and zarr stores."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from conftest import orifice_cohort, wait_for
from distributed import Client, LocalCluster

from isct import expand_arms, simulate
from isct.errors import ConfigError, StoreMismatchError
from models import STATUS

pytestmark = pytest.mark.distributed

ARMS = [
    {"name": "small", "device": {"eoa_cm2": 1.2}},
    {"name": "large", "device": {"eoa_cm2": 2.0}},
]


@pytest.fixture
def cohort_store(tmp_path) -> Path:
    path = tmp_path / "cohort.zarr"
    orifice_cohort(600).to_zarr(path, consolidated=False)
    return path


def assert_same(a: xr.Dataset, b: xr.Dataset) -> None:
    for name in ("mean_gradient_mmhg", "mean_flow_ml_s", "status"):
        np.testing.assert_array_equal(a[name].values, b[name].values)


def test_identical_for_batch_sizes_1_and_997(client, cohort_store, tmp_path):
    one = simulate(cohort_store, "orifice", ARMS, tmp_path / "b1.zarr", client=client, batch_size=1)
    big = simulate(
        cohort_store, "orifice", ARMS, tmp_path / "b997.zarr", client=client, batch_size=997
    )
    assert one["mean_gradient_mmhg"].encoding["chunks"] == (1, 1)
    assert big["mean_gradient_mmhg"].encoding["chunks"] == (1, 600)
    assert_same(one, big)
    assert (big["status"].values == STATUS["ok"]).sum() > 0.95 * big["status"].size
    # physics of the orifice model: a larger valve, a lower gradient for every patient
    ok = (big["status"] == 0).all("arm")
    assert (
        (big["mean_gradient_mmhg"].sel(arm="large") < big["mean_gradient_mmhg"].sel(arm="small"))
        .where(ok, True)
        .all()
    )


def test_identical_for_1_and_2_workers(cohort_store, tmp_path):
    results = []
    for workers in (1, 2):
        with (
            LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=":0") as c,
            Client(c) as cl,
        ):
            results.append(
                simulate(
                    cohort_store,
                    "orifice",
                    ARMS,
                    tmp_path / f"w{workers}.zarr",
                    client=cl,
                    batch_size=100,
                )
            )
    assert_same(*results)


def test_in_memory_cohort_and_units(client, tmp_path):
    ds = simulate(
        orifice_cohort(250), "orifice", ARMS, tmp_path / "o.zarr", client=client, batch_size=100
    )
    assert ds.sizes == {"arm": 2, "patient": 250, "batch": 3}
    assert ds["mean_gradient_mmhg"].attrs["units"] == "mmHg"
    assert list(ds["arm"].values) == ["small", "large"]
    run = json.loads(ds.attrs["isct_last_run"])
    assert run["batches_run"] == 6 and run["batches_skipped"] == 0


def test_failing_patients_are_statuses_not_failures(client, cohort_store, tmp_path):
    settings = {"fail_patients": [3, 17, 599], "timeout_patients": [42]}
    ds = simulate(
        cohort_store,
        "flaky_orifice",
        ARMS,
        tmp_path / "f.zarr",
        client=client,
        batch_size=64,
        settings=settings,
    )
    status = ds["status"].values
    for arm in range(2):
        assert status[arm, 3] == STATUS["solver_failure"]
        assert status[arm, 17] == STATUS["solver_failure"]
        assert status[arm, 599] == STATUS["solver_failure"]
        assert status[arm, 42] == STATUS["timeout"]
        assert np.isnan(ds["mean_gradient_mmhg"].values[arm, [3, 17, 42, 599]]).all()
    reference = simulate(
        cohort_store, "orifice", ARMS, tmp_path / "r.zarr", client=client, batch_size=64
    )
    ok = status == STATUS["ok"]
    np.testing.assert_array_equal(
        ds["mean_gradient_mmhg"].values[ok], reference["mean_gradient_mmhg"].values[ok]
    )
    assert ok.sum() == reference["status"].size - 8 - (reference["status"].values != 0).sum()


def test_invalid_input_is_flagged_before_the_model_runs(client, tmp_path):
    cohort = orifice_cohort(50)
    cohort["bsa_m2"][7] = 9.0  # outside the declared bounds (0.8, 3.5) m2
    cohort["svi_ml_m2"][8] = np.nan
    ds = simulate(cohort, "orifice", ARMS, tmp_path / "i.zarr", client=client, batch_size=20)
    assert (ds["status"].values[:, [7, 8]] == STATUS["invalid_input"]).all()
    assert np.isnan(ds["mean_gradient_mmhg"].values[:, [7, 8]]).all()


def test_rerun_skips_finished_and_refuses_other_trials(client, cohort_store, tmp_path):
    out = tmp_path / "s.zarr"
    simulate(cohort_store, "orifice", ARMS, out, client=client, batch_size=100)
    again = simulate(cohort_store, "orifice", ARMS, out, client=client, batch_size=50)
    run = json.loads(again.attrs["isct_last_run"])
    assert run["batches_run"] == 0 and run["batches_skipped"] == 12
    with pytest.raises(StoreMismatchError, match="arms"):
        simulate(cohort_store, "orifice", ARMS[:1], out, client=client)
    with pytest.raises(StoreMismatchError, match="settings"):
        simulate(cohort_store, "orifice", ARMS, out, client=client, settings={"x": 1})
    with pytest.raises(StoreMismatchError, match="cohort"):
        simulate(orifice_cohort(600, seed=2), "orifice", ARMS, out, client=client)


def test_a_skeleton_left_by_a_kill_during_creation_is_started_over(client, cohort_store, tmp_path):
    """A store with metadata but no batch record holds no finished work: it is started over,
    and a new skeleton appears only whole (written beside the store, then renamed)."""
    out = tmp_path / "s.zarr"
    xr.Dataset(attrs={"model": "orifice"}).to_zarr(out, consolidated=False)  # half a skeleton
    ds = simulate(cohort_store, "orifice", ARMS, out, client=client, batch_size=300)
    assert (ds["status"].values == 0).all() and not (tmp_path / "s.zarr.partial").exists()
    assert json.loads(ds.attrs["isct_last_run"])["batches_run"] == 4


def test_missing_inputs_and_sweeps():
    with pytest.raises(ConfigError, match="lacks inputs"):
        simulate(orifice_cohort(5).drop_vars("bsa_m2"), "orifice", ARMS, "unused.zarr")
    arms = expand_arms(ARMS[:1], {"grid": {"eoa_scale": [0.9, 1.1], "eoa_cm2": [1.0]}})
    assert [a["name"] for a in arms] == [
        "small[eoa_scale=0.9,eoa_cm2=1]",
        "small[eoa_scale=1.1,eoa_cm2=1]",
    ]
    assert arms[1]["device"] == {"eoa_cm2": 1.0, "eoa_scale": 1.1}


def _done_count(store: Path) -> int:
    try:
        return int(zarr.open_group(store, mode="r")["batch_done"][:].sum())
    except Exception:
        return 0


def test_worker_killed_mid_run(cohort_store, tmp_path):
    """A real `dask scheduler` and two `dask worker` processes; one is SIGKILLed mid-run."""
    bindir = Path(sys.executable).parent
    sched_file = tmp_path / "scheduler.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [
                bindir / "dask",
                "scheduler",
                "--scheduler-file",
                sched_file,
                "--port",
                "0",
                "--dashboard-address",
                ":0",
                "--host",
                "127.0.0.1",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        assert wait_for(sched_file.exists, 30, every=0.05)
        for _ in range(2):
            procs.append(
                subprocess.Popen(
                    [
                        bindir / "dask",
                        "worker",
                        "--scheduler-file",
                        sched_file,
                        "--nthreads",
                        "1",
                        "--no-nanny",
                        "--host",
                        "127.0.0.1",
                    ],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        with Client(scheduler_file=str(sched_file)) as client:
            client.wait_for_workers(2, timeout=60)
            out = tmp_path / "killed.zarr"
            settings = {"delay_s": 0.05}
            result = {}
            runner = threading.Thread(
                target=lambda: result.setdefault(
                    "ds",
                    simulate(
                        cohort_store,
                        "orifice",
                        ARMS,
                        out,
                        client=client,
                        batch_size=20,
                        settings=settings,
                    ),
                )
            )
            runner.start()
            assert wait_for(lambda: _done_count(out) >= 10, 60, every=0.05)
            procs[1].send_signal(signal.SIGKILL)
            runner.join(120)
            assert not runner.is_alive()
            assert len(client.scheduler_info()["workers"]) == 1
            reference = simulate(
                cohort_store, "orifice", ARMS, tmp_path / "ref.zarr", client=client, batch_size=20
            )
            assert_same(result["ds"], reference)
            assert int(result["ds"]["batch_done"].sum()) == 60
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_whole_run_sigkilled_then_resumed(cohort_store, tmp_path):
    out = tmp_path / "resumed.zarr"
    script = textwrap.dedent(
        f"""
        from isct.cluster import open_client
        from isct.engine import simulate
        if __name__ == "__main__":
            with open_client(n_workers=2) as c:
                simulate({str(cohort_store)!r}, "orifice", {ARMS!r}, {str(out)!r}, client=c,
                         batch_size=10, settings={{"delay_s": 0.05}}, progress=False)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    try:
        assert wait_for(lambda: _done_count(out) >= 20, 90, every=0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    time.sleep(0.5)
    finished = _done_count(out)
    total = 2 * 60
    assert 20 <= finished < total
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as c,
        Client(c) as cl,
    ):
        resumed = simulate(
            cohort_store, "orifice", ARMS, out, client=cl, settings={"delay_s": 0.05}
        )
        run = json.loads(resumed.attrs["isct_last_run"])
        assert run["batches_skipped"] == finished
        assert run["batches_run"] == total - finished
        reference = simulate(
            cohort_store, "orifice", ARMS, tmp_path / "ref.zarr", client=cl, batch_size=10
        )
    assert_same(resumed, reference)


def test_external_solver_hangs_for_one_patient(client, tmp_path):
    """An external executable per patient through the engine: one hangs, the trial completes."""
    from models.external import ExternalSolverModel

    solvers = Path(__file__).parent / "data" / "solvers"
    model = ExternalSolverModel.from_config(
        {
            "name": "bernoulli",
            "version": "1",
            "executable": "{python}",
            "args": [
                str(solvers / "bernoulli.py"),
                "{input}",
                "{output}",
                "--patient",
                "{patient}",
                "--hang",
                "5",
            ],
            "input_files": {"input.json": {"template_file": str(solvers / "input.json.j2")}},
            "output_file": "output.json",
            "inputs": {
                "velocity_m_s": {
                    "units": "m s-1",
                    "description": "jet velocity",
                    "bounds": [0.0, 8.0],
                }
            },
            "outputs": {"gradient_mmhg": {"units": "mmHg", "description": "4 v^2"}},
            "timeout_s": 2.0,
            "concurrency": 4,
        },
        source="test",
    )
    velocity = np.linspace(1.0, 4.0, 12)
    cohort = xr.Dataset({"velocity_m_s": ("patient", velocity)}, coords={"patient": np.arange(12)})
    out = tmp_path / "trial" / "outcomes.zarr"
    ds = simulate(
        cohort,
        model,
        [{"name": "tavi", "device": {"area_cm2": 1.5}}],
        out,
        client=client,
        batch_size=6,
    )
    status = ds["status"].values[0]
    assert status[5] == STATUS["timeout"]
    others = np.delete(np.arange(12), 5)
    assert (status[others] == STATUS["ok"]).all()
    np.testing.assert_array_equal(
        ds["gradient_mmhg"].values[0, others], 4.0 * velocity[others] ** 2
    )
    kept = sorted(p.name for p in (tmp_path / "trial" / "runs" / "tavi").iterdir())
    assert kept == ["patient-000005"]  # logs are kept for the failed run only


def test_crashing_batch_keeps_finished_work_and_reruns_only_itself(client, cohort_store, tmp_path):
    from isct.errors import SimulationIncompleteError

    flag = tmp_path / "crash"
    flag.write_text("model bug")
    settings = {"crash_patients": [130], "crash_while_exists": str(flag)}
    out = tmp_path / "crash.zarr"
    with pytest.raises(
        SimulationIncompleteError, match=r"(?s)2 of 24 batches failed.*arm .small. batch 2"
    ):
        simulate(
            cohort_store,
            "flaky_orifice",
            ARMS,
            out,
            client=client,
            batch_size=50,
            settings=settings,
            retries=1,
        )
    done = zarr.open_group(out, mode="r")["batch_done"][:]
    assert done.sum() == 22 and not done[:, 2].any()  # every other batch is kept
    flag.unlink()  # the bug is fixed
    ds = simulate(cohort_store, "flaky_orifice", ARMS, out, client=client, settings=settings)
    run = json.loads(ds.attrs["isct_last_run"])
    assert run["batches_run"] == 2 and run["batches_skipped"] == 22
    reference = simulate(
        cohort_store, "orifice", ARMS, tmp_path / "ref.zarr", client=client, batch_size=50
    )
    assert_same(ds, reference)


def test_restart_on_mismatch_and_lazily_opened_cohort(client, cohort_store, tmp_path):
    out = tmp_path / "r.zarr"
    simulate(cohort_store, "orifice", ARMS, out, client=client, batch_size=100)
    again = simulate(
        cohort_store, "orifice", ARMS[:1], out, client=client, batch_size=100, on_mismatch="restart"
    )
    assert list(again["arm"].values) == ["small"]
    assert json.loads(again.attrs["isct_last_run"])["batches_run"] == 6
    # a Dataset opened lazily from a store is sliced per task, not loaded per task
    lazy = xr.open_zarr(cohort_store, consolidated=False)
    from_dataset = simulate(
        lazy, "orifice", ARMS, tmp_path / "lazy.zarr", client=client, batch_size=100
    )
    from_store = simulate(
        cohort_store, "orifice", ARMS, tmp_path / "store.zarr", client=client, batch_size=100
    )
    assert_same(from_dataset, from_store)
    with pytest.raises(ValueError, match="on_mismatch"):
        simulate(cohort_store, "orifice", ARMS, out, client=client, on_mismatch="ignore")


def test_run_batch_ragged_outputs_keep_absent_elements_and_fail_only_empty_rows():
    """A ``ragged`` output with extra dims may hold NaN for absent elements (lesion slots a
    patient does not fill); a row fails only when no element is valid, while NaN in a
    non-ragged output still fails the row."""
    from typing import ClassVar

    from models import Model, Variable, run_batch

    class Slots(Model):
        name: ClassVar[str] = "slots"
        inputs: ClassVar[dict] = {"n": Variable("1", "filled slots", (0, 3))}
        outputs: ClassVar[dict] = {
            "x": Variable("1", "per slot", dims=("slot",), ragged=True),
            "y": Variable("1", "per slot, never absent", dims=("slot",)),
        }

        def output_dims(self, settings):
            return {"slot": 3}

        def simulate(self, patients, device, settings):
            n = np.asarray(patients["n"])
            filled = np.arange(3)[None, :] < n[:, None]
            x = np.where(filled, 1.0, np.nan)
            y = np.where(filled | (n[:, None] != 1), 2.0, np.nan)
            return {"x": x, "y": y}

    out = run_batch(Slots(), {"n": np.array([3, 2, 0, 1])}, {}, {})
    ok, failure = STATUS["ok"], STATUS["solver_failure"]
    # patient 2 fills no slot (x all NaN), patient 3 has NaN in the non-ragged y
    assert out["status"].tolist() == [ok, ok, failure, failure]
    assert np.isnan(out["x"][1, 2]) and out["x"][1, :2].tolist() == [1.0, 1.0]
