"""UQ/SA model runs through the engine (EngineEvaluator) and the cluster/CLI entry points."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml
from conftest import orifice_cohort

from isct.cli import main
from isct.cluster import ENV_SCHEDULER, client_from_env, open_client
from isct.errors import ClusterProfileError, ConfigError
from isct.evaluator import EngineEvaluator
from isct.stages.uq import model_events

REPO_ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.distributed


ARMS = [{"name": "a", "device": {"eoa_cm2": 1.2}}, {"name": "b", "device": {"eoa_cm2": 2.0}}]


def test_evaluator_runs_rows_times_patients_and_matches_the_formula(client, tmp_path):
    ds = orifice_cohort(30, seed=3)
    ev = EngineEvaluator(
        ds,
        "orifice",
        ARMS,
        ["eoa_scale"],
        ["mean_gradient_mmhg"],
        tmp_path,
        client=client,
        batch_size=16,
    )
    X = np.array([[0.8], [1.0], [1.25]])
    y = ev(X)["mean_gradient_mmhg"]
    assert y.shape == (3, 30, 2)  # (rows, patients, arms)
    q = ds["svi_ml_m2"].values * ds["bsa_m2"].values / 0.3 * 1e-6  # m3/s
    for j, eoa in enumerate((1.2, 2.0)):
        for r, scale in enumerate(X[:, 0]):
            v = q / (eoa * scale * 1e-4)
            np.testing.assert_allclose(y[r, :, j], 0.5 * 1050 * v**2 / 133.322, rtol=1e-12)
    assert ev.evaluations == 3 * 30 * 2


def test_evaluator_resumes_and_does_not_depend_on_batch_size(client, tmp_path):
    X = np.array([[0.9], [1.1]])
    first = EngineEvaluator(
        orifice_cohort(30, seed=3),
        "orifice",
        ARMS,
        ["eoa_scale"],
        ["mean_gradient_mmhg"],
        tmp_path / "r",
        client=client,
        batch_size=7,
    )
    y1 = first(X)["mean_gradient_mmhg"]
    store = next((tmp_path / "r").glob("eval-*.zarr"))
    again = first(X)["mean_gradient_mmhg"]  # the same design: nothing is recomputed
    assert (
        json.loads(xr.open_zarr(store, consolidated=False).attrs["isct_last_run"])["batches_run"]
        == 0
    )
    other = EngineEvaluator(
        orifice_cohort(30, seed=3),
        "orifice",
        ARMS,
        ["eoa_scale"],
        ["mean_gradient_mmhg"],
        tmp_path / "s",
        client=client,
        batch_size=60,
    )
    np.testing.assert_array_equal(y1, again)
    np.testing.assert_array_equal(y1, other(X)["mean_gradient_mmhg"])


def test_parameter_names_must_not_shadow_cohort_variables(tmp_path):
    with pytest.raises(ConfigError, match="share names with cohort variables"):
        EngineEvaluator(
            orifice_cohort(30, seed=3),
            "orifice",
            ARMS,
            ["bsa_m2"],
            ["mean_gradient_mmhg"],
            tmp_path,
        )


def test_model_events_derive_classes_from_surrogate_outputs():
    """The model's declared events, its PPM class derived from the indexed EOA (VARC-3, BMI
    thresholds), evaluated on continuous UQ outputs with the model's own derive()."""
    from models.tavr import TAVRModel

    subset = xr.Dataset({"bmi_kg_m2": ("patient", np.array([25.0, 35.0, 25.0, 35.0]))})
    events, needed = model_events(TAVRModel(), ["mean_gradient_mmhg"], subset)
    assert set(events) == {"ppm_moderate_or_severe", "ppm_severe", "high_gradient"}
    assert needed == ["eoai_cm2_m2"]
    eoai = np.array([[[0.60], [0.60], [0.80], [0.68]]])  # (sample, patient, arm)
    y = {"eoai_cm2_m2": eoai, "mean_gradient_mmhg": np.full((1, 4, 1), 25.0)}
    np.testing.assert_array_equal(events["ppm_severe"](y)[0, :, 0], [1, 0, 0, 0])
    np.testing.assert_array_equal(events["ppm_moderate_or_severe"](y)[0, :, 0], [1, 1, 1, 1])
    np.testing.assert_array_equal(events["high_gradient"](y)[0, :, 0], [1, 1, 1, 1])
    y["eoai_cm2_m2"][0, 0, 0] = np.nan  # a failed simulation is no event but missing
    assert np.isnan(events["ppm_severe"](y)[0, 0, 0])


def test_open_client_connects_to_an_existing_scheduler(client, monkeypatch):
    address = client.scheduler.address
    with open_client(address) as c:
        assert c.scheduler.address == address
        assert len(c.scheduler_info()["workers"]) == 2
    monkeypatch.setenv(ENV_SCHEDULER, address)
    with client_from_env() as c:
        assert c.submit(sum, [1, 2]).result() == 3


def test_cluster_profile_errors_name_file_and_key(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text(yaml.safe_dump({"kind": "kubernetes"}))
    with pytest.raises(
        ConfigError,
        match=r"p\.yaml: key 'kind' must be one of \['address', 'local', 'pbs', 'slurm'\]",
    ):
        with open_client(profile=bad):
            pass
    bad.write_text(yaml.safe_dump({"kind": "address"}))
    with pytest.raises(ConfigError, match="needs key 'address'"):
        with open_client(profile=bad):
            pass


def test_local_cluster_profile(tmp_path):
    profile = tmp_path / "local.yaml"
    profile.write_text(yaml.safe_dump({"kind": "local", "n_workers": 1}))
    with open_client(profile=profile) as c:
        assert len(c.scheduler_info()["workers"]) == 1
        assert c.run(lambda: __import__("os").environ.get("OMP_NUM_THREADS")).popitem()[1] == "1"


def test_isct_cohort_command(tmp_path, capsys):
    out = tmp_path / "c.zarr"
    spec = REPO_ROOT / "cohorts" / "populations" / "tavr_severe_as.yaml"
    assert (
        main(
            [
                "cohort",
                str(spec),
                "--n",
                "50",
                "--seed",
                "4",
                "--out",
                str(out),
                "--batch-size",
                "7",
            ]
        )
        == 0
    )
    assert "wrote 50 patients" in capsys.readouterr().out
    ds = xr.open_zarr(out, consolidated=False)
    assert ds.sizes["patient"] == 50 and ds["annulus_area_mm2"].attrs["units"] == "mm2"
    # the same cohort as in one batch
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "isct.cli",
            "cohort",
            str(spec),
            "--n",
            "50",
            "--seed",
            "4",
            "--out",
            str(tmp_path / "d.zarr"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    other = xr.open_zarr(tmp_path / "d.zarr", consolidated=False)
    np.testing.assert_array_equal(ds["annulus_area_mm2"].values, other["annulus_area_mm2"].values)


def test_isct_cohort_bad_spec_is_one_clear_message(tmp_path, capsys):
    spec = tmp_path / "bad.yaml"
    text = (REPO_ROOT / "cohorts" / "populations" / "tavr_severe_as.yaml").read_text()
    spec.write_text(text.replace("probabilities: [0.47, 0.53]", "probabilities: [0.47, 0.63]"))
    assert (
        main(["cohort", str(spec), "--n", "5", "--seed", "1", "--out", str(tmp_path / "x.zarr")])
        == 2
    )
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "sex" in err and "Traceback" not in err


@pytest.mark.parametrize("name", ["slurm", "pbs"])
def test_jobqueue_profiles_make_single_threaded_worker_jobs(name, tmp_path):
    """The shipped profiles build as they are (site keys are commented placeholders); a job
    of 4 cores runs 4 single-threaded worker processes with the submitter's PYTHONPATH."""
    from isct.cluster import jobqueue_cluster

    shipped = (REPO_ROOT / "config" / "clusters" / f"{name}.yaml").read_text()
    assert "# queue:" in shipped and "# account: ACCOUNT" in shipped  # placeholders only
    spec = yaml.safe_load(shipped)
    spec["options"]["scheduler_options"] = {"host": "127.0.0.1"}  # test on loopback only
    spec["options"]["cores"] = 4
    profile = tmp_path / f"{name}.yaml"
    profile.write_text(yaml.safe_dump(spec))
    cluster = jobqueue_cluster(profile)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "--nthreads 1" in script and "--nworkers 4" in script
    assert "export OMP_NUM_THREADS=1" in script
    assert sys.executable in script  # the submitting interpreter
    if os.environ.get("PYTHONPATH"):
        assert "export PYTHONPATH=" in script
    assert ("#SBATCH -p" if name == "slurm" else "#PBS -q") not in script  # site default
    spec["options"]["no_such_option"] = 1
    profile.write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError, match=f"{name}.yaml: key 'options'"):
        jobqueue_cluster(profile)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"jobs": 2, "adapt": {"minimum": 1, "maximum": 2}}, "keys 'jobs' and 'adapt' exclude"),
        ({"adapt": {"minimum": 1}}, "key 'adapt' needs 'minimum' and 'maximum'"),
        ({"adapt": {"minimum": 3, "maximum": 2}}, "key 'adapt.maximum' must be an integer >= 3"),
        ({"adapt": {"minimum": 0, "maximum": 2, "every": 1}}, "key 'adapt.every' is not allowed"),
        ({"jobs": 0}, "key 'jobs' must be an integer >= 1"),
        ({"pending_timeout": -1}, "key 'pending_timeout' must be a number of seconds > 0"),
        ({"n_workers": 2}, "key 'n_workers' is not allowed in a kind 'slurm' profile"),
    ],
)
def test_a_bad_jobqueue_profile_is_one_error_naming_the_key(change, message, tmp_path):
    from isct.cluster import read_profile

    spec = {"kind": "slurm", "options": {"cores": 1}, **change}
    profile = tmp_path / "p.yaml"
    profile.write_text(yaml.safe_dump(spec))
    with pytest.raises(ClusterProfileError, match=re.escape(f"{profile}: {message}")):
        read_profile(profile)
