"""Tests of the external-solver Model with real child processes.

The solver is ``tests/data/solvers/bernoulli.py``: the simplified Bernoulli equation
``gradient = 4 v**2`` mmHg (Hatle et al., Br Heart J 1980;43:284) and ``flow = 100 A v`` mL/s,
so every successful patient has an analytic answer. All runs go through
:func:`models.run_batch`, as the engine calls models.
"""

from __future__ import annotations

import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import models
from models import STATUS, run_batch
from models.external import CONFIG_SCHEMA, ExternalSolverConfigError, ExternalSolverModel

SOLVERS = Path(__file__).parent / "data" / "solvers"
SOLVER = str(SOLVERS / "bernoulli.py")
OK, INVALID, FAILURE, TIMEOUT = (
    STATUS[k] for k in ("ok", "invalid_input", "solver_failure", "timeout")
)


def make_config(*extra_args: str, fmt: str = "json", **overrides) -> dict:
    """Configuration of the Bernoulli solver; ``fmt`` picks JSON or CSV for input and output."""
    config = {
        "name": "bernoulli",
        "version": "1",
        "executable": "{python}",
        "args": [SOLVER, "{input}", "{output}", "--patient", "{patient}", *extra_args],
        "input_files": {f"input.{fmt}": {"template_file": str(SOLVERS / f"input.{fmt}.j2")}},
        "output_file": f"output.{fmt}",
        "inputs": {
            "velocity_m_s": {
                "units": "m s-1",
                "description": "peak aortic jet velocity",
                "bounds": [0.0, 8.0],
            }
        },
        "outputs": {
            "gradient_mmhg": {"units": "mmHg", "description": "peak gradient, 4 v^2"},
            "flow_ml_s": {"units": "mL s-1", "description": "flow through the valve"},
            "omp_num_threads": {"units": "1", "description": "child env", "dtype": "int8"},
            "leak": {"units": "1", "description": "1 if a parent variable leaked", "dtype": "int8"},
        },
        "timeout_s": 20,
        "concurrency": 4,
    }
    config.update(overrides)
    return config


def batch(ids, velocities) -> dict[str, np.ndarray]:
    return {
        "patient": np.asarray(ids, dtype=np.int64),
        "velocity_m_s": np.asarray(velocities, dtype=np.float64),
    }


def patient_dirs(runs: Path, arm: str = "tavi") -> list[str]:
    arm_dir = runs / arm
    return sorted(p.name for p in arm_dir.iterdir()) if arm_dir.exists() else []


def assert_analytic(out, rows, velocities, area) -> None:
    v = np.asarray(velocities)[rows]
    a = np.broadcast_to(area, np.shape(velocities))[rows]
    np.testing.assert_array_equal(out["gradient_mmhg"][rows], 4.0 * v**2)
    np.testing.assert_array_equal(out["flow_ml_s"][rows], 100.0 * a * v)


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_every_patient_matches_the_analytic_answer(tmp_path, monkeypatch, fmt):
    monkeypatch.setenv("ISCT_TEST_LEAK", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    runs = tmp_path / "runs"
    stale = runs / "tavi" / "patient-000012"
    stale.mkdir(parents=True)
    (stale / "output.json").write_text('{"gradient_mmhg": -1}')  # left by an earlier attempt
    model = ExternalSolverModel.from_config(make_config(fmt=fmt), source="trial.yaml")
    ids = [10, 11, 12, 13, 14]
    v = [1.0, 2.5, 3.3, 4.75, 0.1]
    area = np.array([1.5, 2.0, 2.25, 3.1, 1.0])  # per patient, as UQ passes device parameters
    out = run_batch(model, batch(ids, v), {"area_cm2": area}, {"runs_dir": runs, "arm": "tavi"})

    assert out["status"].tolist() == [OK] * 5
    assert_analytic(out, slice(None), v, area)
    assert out["omp_num_threads"].tolist() == [1] * 5  # clean environment, not the parent's 8
    assert out["leak"].tolist() == [0] * 5
    assert patient_dirs(runs) == []  # successful working directories are deleted


def test_nonzero_exit_and_garbage_output_are_solver_failures_with_logs(tmp_path):
    runs = tmp_path / "runs"
    config = make_config("--fail", "2", "--fail", "4", "--garbage", "5")
    model = ExternalSolverModel.from_config(config, source="trial.yaml")
    v = [1.0, 1.5, 2.0, 2.5, 3.0, 3.5]
    out = run_batch(model, batch(range(6), v), {"area_cm2": 2.0}, {"runs_dir": runs, "arm": "tavi"})

    assert out["status"].tolist() == [OK, OK, FAILURE, OK, FAILURE, FAILURE]
    ok = out["status"] == OK
    assert_analytic(out, ok, v, 2.0)
    assert np.isnan(out["gradient_mmhg"][~ok]).all()
    assert (out["omp_num_threads"][~ok] == -1).all()
    assert patient_dirs(runs) == ["patient-000002", "patient-000004", "patient-000005"]

    failed = runs / "tavi" / "patient-000002"
    assert "patient 2: diverged" in (failed / "stderr.log").read_text()
    assert json.loads((failed / "input.json").read_text())["velocity_m_s"] == 2.0
    record = json.loads((failed / "run.json").read_text())
    assert (record["returncode"], record["status"]) == (3, "solver_failure")
    assert record["argv"][:2] == [sys.executable, SOLVER]
    garbage = json.loads((runs / "tavi" / "patient-000005" / "run.json").read_text())
    assert garbage["returncode"] == 0 and "not JSON" in garbage["reason"]

    # the diagnostic interface gives the same verdicts with reasons
    results = model.run(batch([2, 3], [2.0, 2.5]), {"area_cm2": 2.0}, {"runs_dir": runs})
    assert [r.status for r in results] == [FAILURE, OK]
    assert results[0].reason == "solver exited with status 3"
    assert results[1].values["gradient_mmhg"] == 4.0 * 2.5**2 and results[1].reason == ""


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead


def test_hanging_patient_times_out_and_its_process_group_is_killed(tmp_path):
    runs = tmp_path / "runs"
    model = ExternalSolverModel.from_config(
        make_config("--hang", "101", timeout_s=1.5, concurrency=2), source="trial.yaml"
    )
    ids, v = [100, 101, 102, 103], [1.0, 2.0, 3.0, 4.0]
    start = time.perf_counter()
    out = run_batch(model, batch(ids, v), {"area_cm2": 1.2}, {"runs_dir": runs, "arm": "tavi"})
    elapsed = time.perf_counter() - start

    assert out["status"].tolist() == [OK, TIMEOUT, OK, OK]
    assert_analytic(out, [0, 2, 3], v, 1.2)
    assert np.isnan(out["flow_ml_s"][1])
    assert elapsed < 15  # the solver would sleep 120 s
    hung = runs / "tavi" / "patient-000101"
    assert patient_dirs(runs) == [hung.name]
    assert json.loads((hung / "run.json").read_text())["status"] == "timeout"
    grandchild = int((hung / "grandchild.pid").read_text())
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)


def test_runs_of_a_batch_are_concurrent(tmp_path):
    model = ExternalSolverModel.from_config(
        make_config(*(f"--hang={i}" for i in range(4)), timeout_s=1.0, concurrency=4)
    )
    start = time.perf_counter()
    out = run_batch(model, batch(range(4), [1.0] * 4), {"area_cm2": 1.0}, {"runs_dir": tmp_path})
    elapsed = time.perf_counter() - start
    assert out["status"].tolist() == [TIMEOUT] * 4
    assert elapsed < 3.5  # four 1 s timeouts one after the other would take >= 4 s


def test_out_of_bounds_patients_are_never_run(tmp_path):
    model = ExternalSolverModel.from_config(make_config(keep="all"))
    v = [1.0, 9.0, np.nan, 2.0]
    out = run_batch(model, batch([0, 1, 2, 3], v), {"area_cm2": 1.0}, {"runs_dir": tmp_path})
    assert out["status"].tolist() == [OK, INVALID, INVALID, OK]
    assert_analytic(out, [0, 3], v, 1.0)
    assert patient_dirs(tmp_path, "default") == ["patient-000000", "patient-000003"]


def test_repeated_patient_rows_get_their_own_directories(tmp_path):
    """UQ flattens (sample x patient) into rows: the same patient id appears several times."""
    model = ExternalSolverModel.from_config(make_config(keep="all"))
    v = [1.0, 2.0, 3.0, 0.5]
    area = np.array([1.0, 1.1, 1.2, 1.3])
    out = run_batch(model, batch([7, 7, 7, 8], v), {"area_cm2": area}, {"runs_dir": tmp_path})
    assert out["status"].tolist() == [OK] * 4
    assert_analytic(out, slice(None), v, area)
    assert patient_dirs(tmp_path, "default") == [
        "patient-000007-row0",
        "patient-000007-row1",
        "patient-000007-row2",
        "patient-000008",
    ]
    # keep="all": the run record of a successful run is kept too
    record = json.loads((tmp_path / "default" / "patient-000008" / "run.json").read_text())
    assert record["status"] == "ok"


def test_registry_and_pickle_round_trip(tmp_path):
    model = models.get_model("external", source="trial.yaml", **make_config(fmt="csv"))
    assert isinstance(model, ExternalSolverModel)
    assert (model.name, model.version) == ("bernoulli", "1")
    assert model.inputs["velocity_m_s"].bounds == (0.0, 8.0)
    clone = pickle.loads(pickle.dumps(model))
    out = run_batch(clone, batch([0, 1], [1.5, 2.5]), {"area_cm2": 2.0}, {"runs_dir": tmp_path})
    assert out["status"].tolist() == [OK, OK]
    assert_analytic(out, slice(None), [1.5, 2.5], 2.0)
    assert clone.fingerprint() == model.fingerprint()
    other = ExternalSolverModel.from_config(make_config(fmt="json"))
    assert other.fingerprint() != model.fingerprint()


def test_plain_executable_with_inline_template(tmp_path):
    """``cp`` as the solver: the rendered input is the output (argv list, no shell)."""
    config = {
        "executable": "cp",
        "args": ["{input:in.json}", "{output}"],
        "input_files": {"in.json": {"template": '{"y": {{ 3 * patient.x + settings.offset }}}'}},
        "inputs": {"x": {"units": "1", "description": "x"}},
        "outputs": {"y": {"units": "1", "description": "3 x + offset"}},
    }
    model = ExternalSolverModel.from_config(config)
    x = np.array([0.5, -2.0, 7.25])
    out = run_batch(model, {"x": x}, {}, {"runs_dir": tmp_path, "offset": 1.0})
    assert out["status"].tolist() == [OK] * 3
    np.testing.assert_array_equal(out["y"], 3 * x + 1.0)


def test_relative_paths_resolve_against_base_dir(tmp_path):
    config = make_config(
        args=["{base_dir}/bernoulli.py", "{input}", "{output}", "--patient={patient}"],
        input_files={"input.csv": {"template_file": "input.csv.j2"}},
        runs_dir="runs",
    )
    model = ExternalSolverModel.from_config(config, source="trial.yaml", base_dir=SOLVERS)
    assert model.runs_dir == SOLVERS / "runs"
    v = [0.75, 1.25]
    settings = {"runs_dir": tmp_path}  # the engine's runs_dir wins over the config's
    out = run_batch(model, batch([3, 4], v), {"area_cm2": 2.5}, settings)
    assert out["status"].tolist() == [OK, OK]
    assert_analytic(out, slice(None), v, 2.5)
    assert not (SOLVERS / "runs").exists()


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        ({"executabel": "x"}, ["trial.yaml", "executabel", "allowed keys", "executable"]),
        ({"parser": "xml"}, ["trial.yaml", "'parser'", "json", "csv"]),
        ({"output_file": "out.txt"}, ["'parser'", "json, csv"]),
        ({"output_file": "../out.json"}, ["'output_file'", "plain names"]),
        ({"timeout_s": 0}, ["'timeout_s'"]),
        ({"executable": "no-such-solver-isct"}, ["'executable'", "not found on PATH"]),
        ({"args": ["{inputt}"]}, ["'args.0'", "{inputt}", "{workdir}"]),
        ({"args": ["{input:mesh.inp}"]}, ["'args.0'", "input.json"]),
        (
            {"input_files": {"a.json": {"template": "{{ x"}}},
            ["'input_files.a.json'", "syntax error"],
        ),
        (
            {"input_files": {"a.json": {"template_file": "/nonexistent/a.j2"}}},
            ["'input_files.a.json.template_file'", "cannot read"],
        ),
        ({"input_files": {"a.json": {}}}, ["'input_files.a.json'", "template, template_file"]),
        (
            {"inputs": {"v": {"units": "1", "description": "v", "bounds": [2, 1]}}},
            ["'inputs.v.bounds'"],
        ),
        ({"outputs": {"y": {"units": "1"}}}, ["'outputs.y'", "description"]),
        ({"keep": "none"}, ["'keep'", "failed", "all"]),
    ],
)
def test_configuration_errors_name_file_key_and_allowed_values(change, fragments):
    config = make_config()
    config["args"] = ["{input}"]
    config.update(change)
    with pytest.raises(ExternalSolverConfigError) as info:
        ExternalSolverModel.from_config(config, source="trial.yaml")
    for fragment in fragments:
        assert fragment in str(info.value)


def test_input_placeholder_needs_a_single_input_file():
    files = {
        "a.json": {"template": "{}"},
        "b.json": {"template": "{}"},
    }
    with pytest.raises(ExternalSolverConfigError, match=r"\{input:NAME\}"):
        ExternalSolverModel.from_config(make_config(input_files=files))


def test_undefined_template_name_is_a_configuration_error(tmp_path):
    files = {"input.json": {"template": "{{ patient.heart_rate_bpm }}"}}
    model = ExternalSolverModel.from_config(make_config(input_files=files), source="trial.yaml")
    with pytest.raises(ExternalSolverConfigError, match="velocity_m_s") as info:
        run_batch(model, batch([0], [1.0]), {"area_cm2": 1.0}, {"runs_dir": tmp_path})
    assert "heart_rate_bpm" in str(info.value)


def test_runs_dir_is_required(tmp_path):
    model = ExternalSolverModel.from_config(make_config(), source="trial.yaml")
    with pytest.raises(ExternalSolverConfigError, match="runs_dir"):
        run_batch(model, batch([0], [1.0]), {"area_cm2": 1.0}, {})
    model = ExternalSolverModel.from_config(make_config(runs_dir=str(tmp_path / "r")))
    out = run_batch(model, batch([0], [1.0]), {"area_cm2": 1.0}, {})
    assert out["status"].tolist() == [OK]


def test_schema_is_a_valid_json_schema():
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(CONFIG_SCHEMA)
    jsonschema.validate(make_config(), CONFIG_SCHEMA)
