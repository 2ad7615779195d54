"""Trial config validation: every bad input stops the run before any work, naming file and key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from isct.config import resolve_path, validate_config
from isct.errors import ConfigError
from isct.resources import data_root
from isct.trial import load_config

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT = REPO_ROOT / "config" / "config.yaml"


def default_config() -> dict:
    return yaml.safe_load(DEFAULT.read_text())


def write(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "trial.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_default_config_is_valid_and_defaults_are_filled():
    config = load_config(DEFAULT)
    assert config["cohort"]["n"] == 1000
    assert config["simulation"]["retries"] == 2  # from the schema, not the file
    assert config["uncertainty"]["enabled"] is True
    assert [a["name"] for a in config["arms"]] == ["balloon_expandable", "self_expanding"]


def test_mistyped_key_names_file_key_and_allowed(tmp_path):
    config = default_config()
    config["cohort"]["sizee"] = config["cohort"].pop("n")
    path = write(tmp_path, config)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert str(path) in message
    assert "cohort.sizee" in message
    assert "population" in message and "batch_size" in message  # allowed keys listed


def test_close_match_is_suggested(tmp_path):
    config = default_config()
    config["uncertainy"] = config.pop("uncertainty")
    with pytest.raises(ConfigError, match="did you mean 'uncertainty'"):
        load_config(write(tmp_path, config))


def test_wrong_type(tmp_path):
    config = default_config()
    config["cohort"]["n"] = "many"
    with pytest.raises(ConfigError, match=r"cohort\.n' must be of type integer, got 'many'"):
        load_config(write(tmp_path, config))


def test_enum_lists_allowed_values(tmp_path):
    config = default_config()
    config["uncertainty"]["method"] = "magic"
    with pytest.raises(ConfigError, match="allowed: mc, pce_collocation, pce_spectral"):
        load_config(write(tmp_path, config))


def test_missing_file_names_the_config_the_key_and_both_places_looked(tmp_path):
    config = default_config()
    config["cohort"]["population"] = "cohorts/populations/nope.yaml"
    path = write(tmp_path, config)
    run_dir = tmp_path / "run"
    with pytest.raises(ConfigError) as err:
        load_config(path, workdir=run_dir)
    message = str(err.value)
    assert f"{path}: key 'cohort.population' names 'cohorts/populations/nope.yaml'" in message
    assert str(run_dir / "cohorts" / "populations" / "nope.yaml") in message
    assert str(data_root() / "cohorts" / "populations" / "nope.yaml") in message
    assert message.count("\n") == 1  # one problem, one line


def test_relative_paths_resolve_in_the_run_directory_before_the_built_in_files(tmp_path):
    name = "cohorts/populations/tavr_severe_as.yaml"
    assert resolve_path(name, workdir=tmp_path) == data_root() / name
    own = tmp_path / name
    own.parent.mkdir(parents=True)
    own.write_text((data_root() / name).read_text().replace("probabilities: [0.47, 0.53]", "x"))
    assert resolve_path(name, workdir=tmp_path) == own
    config = default_config()
    with pytest.raises(ConfigError, match="cohort.population' names a file with a problem"):
        load_config(write(tmp_path, config), workdir=tmp_path)  # the run directory's copy wins
    assert load_config(write(tmp_path, config), workdir=tmp_path / "elsewhere")


def test_unknown_model_lists_available(tmp_path):
    config = default_config()
    config["model"]["name"] = "tavrr"
    with pytest.raises(ConfigError, match=r"model\.name.*available: .*tavr"):
        load_config(write(tmp_path, config))


def test_unknown_endpoint(tmp_path):
    config = default_config()
    config["endpoints"] = ["mean_gradient_mmhg", "gradient"]
    with pytest.raises(ConfigError, match=r"endpoints.*'gradient'"):
        load_config(write(tmp_path, config))


def test_all_problems_reported_at_once():
    config = default_config()
    config["trial"]["seed"] = -1
    config["arms"][0]["devise"] = {}
    with pytest.raises(ConfigError) as err:
        validate_config(config, source="x.yaml")
    assert "trial.seed" in str(err.value) and "arms[0].devise" in str(err.value)


def test_isct_run_stops_before_any_work(tmp_path):
    config = default_config()
    config["trial"]["name"] = "should_not_exist"
    config["cohort"]["populaton"] = "x"
    path = write(tmp_path, config)
    proc = subprocess.run(
        [sys.executable, "-m", "isct.cli", "run", str(path), "--cores", "1"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 2
    assert "cohort.populaton" in proc.stderr and str(path) in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (REPO_ROOT / "results" / "should_not_exist").exists()


def test_unreadable_config(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("trial: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_bad_population_spec_stops_the_run_before_any_work(tmp_path):
    spec = tmp_path / "spec.yaml"
    text = (REPO_ROOT / "cohorts" / "populations" / "tavr_severe_as.yaml").read_text()
    spec.write_text(text.replace("probabilities: [0.47, 0.53]", "probabilities: [0.47, 0.63]"))
    config = default_config()
    config["cohort"]["population"] = str(spec)
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, config))
    message = str(err.value)
    assert "cohort.population" in message and str(spec) in message and "sex" in message


def test_bad_comparator_file_stops_the_run(tmp_path):
    comparators = tmp_path / "comparators.csv"
    comparators.write_text(
        "id,study,role,quantity,statistic,arm,value,unit,timepoint_days,citation\n"
        "x,S,validation,eoa_cm2,average,pooled,2,cm2,30,c\n"
    )
    config = default_config()
    config["credibility"]["comparators"] = str(comparators)
    with pytest.raises(ConfigError, match=r"credibility\.comparators.*average"):
        load_config(write(tmp_path, config))


TRIALS = [DEFAULT, *sorted((REPO_ROOT / "config" / "trials").glob("*.yaml"))]


@pytest.mark.parametrize("path", TRIALS, ids=lambda p: p.name)
def test_every_shipped_trial_config_is_valid(path):
    assert load_config(path)["trial"]["name"]


def test_unknown_device_key_family_or_setting_stops_the_run(tmp_path):
    config = default_config()
    config["arms"][1]["device"] = {"family": "self_expanding", "sise_mm": 26}
    with pytest.raises(
        ConfigError, match=r"arms\[1\]\.device' \(arm 'self_expanding'\).*'sise_mm'.*allowed keys"
    ):
        load_config(write(tmp_path, config))
    config = default_config()
    config["arms"][0]["device"] = {"family": "ballon_expandable"}
    with pytest.raises(
        ConfigError, match=r"arms\[0\]\.device.*'ballon_expandable'; allowed values"
    ):
        load_config(write(tmp_path, config))
    config = default_config()
    config["arms"][0]["device"]["size_mm"] = 25
    with pytest.raises(ConfigError, match=r"size_mm' is 25.*sizes: \[20, 23, 26, 29\]"):
        load_config(write(tmp_path, config))
    config = default_config()
    config["model"]["settings"] = {"dt": 0.001}
    with pytest.raises(ConfigError, match=r"model\.settings'.*\['dt'\].*allowed keys: .*'dt_s'"):
        load_config(write(tmp_path, config))


def test_a_model_card_that_drifted_from_its_model_stops_the_run(tmp_path):
    card = yaml.safe_load((REPO_ROOT / "models" / "tavr" / "card.yaml").read_text())
    card["version"] = "0.9"
    card["outputs"]["mean_gradient_mmhg"]["units"] = "Pa"
    del card["outputs"]["ppm_class"]
    path = tmp_path / "card.yaml"
    path.write_text(yaml.safe_dump(card))
    config = default_config()
    config["model"]["card"] = str(path)
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, config))
    message = str(err.value)
    assert "model.card" in message and str(path) in message
    assert "key 'version' is '0.9'" in message
    assert "lacks ['ppm_class']" in message
    assert "outputs.mean_gradient_mmhg.units' is 'Pa'" in message
    del card["limitations"]
    path.write_text(yaml.safe_dump(card))
    with pytest.raises(ConfigError, match="'limitations' is a required property"):
        load_config(write(tmp_path, config))


def test_snakemake_validation_fills_defaults_without_a_question(tmp_path):
    """Snakemake's own validator (defaults filled) accepts a config whose nullable blocks
    are absent, as isct's does (a default inside a null block once crashed it)."""
    from snakemake.utils import validate

    from isct.resources import schema_path

    config = yaml.safe_load(DEFAULT.read_text())
    config["report"].pop("question")
    config.pop("design_sweep", None)
    validate(config, str(schema_path()))
    assert config["report"]["question"] is None
