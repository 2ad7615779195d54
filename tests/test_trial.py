"""The Trial: a validated, read-only trial config and what stages derive from it."""

from __future__ import annotations

import json

import pytest
from conftest import REPO

from isct.errors import ConfigError
from isct.trial import Trial, load_config

TINY = REPO / "tests" / "data" / "tiny.yaml"


def test_a_trial_is_read_only_all_the_way_down():
    trial = load_config(TINY)
    with pytest.raises(TypeError):
        trial["cohort"]["n"] = 5
    with pytest.raises(AttributeError):
        trial["arms"].append({"name": "x"})
    with pytest.raises(TypeError):
        trial["arms"][0]["device"]["family"] = "other"
    with pytest.raises(AttributeError):
        trial.source = "elsewhere"
    # what a stage is handed is a copy: changing it leaves the trial as it was
    arms = trial.arms
    arms[0]["device"]["family"] = "other"
    settings = trial.settings
    settings["new"] = 1
    assert trial.arms[0]["device"]["family"] != "other" and "new" not in trial.settings


def test_replace_revalidates_and_names_the_key():
    trial = load_config(TINY)
    smaller = trial.replace({"cohort.n": 12})
    assert smaller["cohort"]["n"] == 12 and trial["cohort"]["n"] != 12
    with pytest.raises(ConfigError, match="cohort.n"):
        trial.replace({"cohort.n": -1})


def test_model_arms_and_problem_are_built_once():
    trial = load_config(TINY)
    assert trial.model is trial.model and trial.problem is trial.problem
    assert trial.arm_names == [a["name"] for a in trial.arms]
    assert trial.to_dict() == json.loads(json.dumps(trial.to_dict()))  # plain JSON


def test_calibration_replaces_settings_and_joins_the_uncertain_parameters(tmp_path):
    trial = load_config(TINY)
    name = next(iter(trial["calibration"]["parameters"]))
    calibration = tmp_path / "calibration.json"
    posterior = {"estimate": 0.5, "sd": 0.1, "prior_low": 0.0, "prior_high": 1.0}
    calibration.write_text(
        json.dumps({"enabled": True, "settings": {name: 0.5}, "parameters": {name: posterior}})
    )
    calibrated = trial.with_calibration(calibration)
    assert calibrated.settings[name] == 0.5 and calibrated.calibration["settings"][name] == 0.5
    assert trial["calibration"]["propagate"]
    assert calibrated["uncertainty"]["parameters"][name]["dist"] == "truncnormal"
    assert name not in trial["uncertainty"]["parameters"]
    # a replace keeps the calibration applied
    assert calibrated.replace({"cohort.n": 12}).settings[name] == 0.5
    calibration.write_text(json.dumps({"enabled": False, "settings": {}}))
    assert trial.with_calibration(calibration) is trial


def test_from_dict_rejects_what_load_config_rejects():
    with pytest.raises(ConfigError, match="trial"):
        Trial.from_dict({"cohort": {}}, source="x.yaml")
