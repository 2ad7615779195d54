"""``isct init``: a new trial project, self-contained, that runs as generated (isct.init)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import xarray as xr
import yaml

from isct.cli import main
from isct.config import named_files
from isct.errors import IsctError
from isct.init import PROJECT_FILES, TEMPLATES, Template, _rewrite, init_project
from isct.resources import resolve_data_path, workflow_dir
from isct.trial import load_config

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("template", ["tavr", "blank"])
def test_a_project_names_only_its_own_files_and_validates_from_anywhere(
    template, tmp_path, monkeypatch, capsys
):
    project = tmp_path / "p"
    assert main(["init", str(project), "--template", template]) == 0
    assert f"cd {project} && isct run config.yaml" in capsys.readouterr().out
    monkeypatch.chdir(tmp_path)  # not the project: validation must not lean on the cwd
    config = load_config(project / "config.yaml", workdir=project)
    files = named_files(config)
    assert {"cohort.population", "model.card", "credibility.plan"} <= set(files)
    for key, value in files.items():
        found, _ = resolve_data_path(value, workdir=project)
        assert found.is_relative_to(project) and found.is_file(), key  # not a built-in file
    assert (project / "comparator_populations.csv").is_file()
    text = (project / "config.yaml").read_text()
    source = (workflow_dir() / TEMPLATES[template].config).read_text()
    assert [line for line in text.splitlines() if line.lstrip().startswith("#")] == [
        line for line in source.splitlines() if line.lstrip().startswith("#")
    ]  # comments kept


def test_init_refuses_to_overwrite_and_names_the_files(tmp_path):
    init_project(tmp_path / "p", "tavr")
    with pytest.raises(IsctError, match=r"would overwrite .*config\.yaml"):
        init_project(tmp_path / "p", "blank")


def test_a_template_whose_files_are_missing_names_them(tmp_path, monkeypatch):
    monkeypatch.setitem(TEMPLATES, "ghost", Template("config/trials/ghost.yaml", "absent"))
    with pytest.raises(IsctError) as err:
        init_project(tmp_path / "g", "ghost")
    assert "config/trials/ghost.yaml" in str(err.value) and "available templates" in str(err.value)
    assert not (tmp_path / "g").exists()
    # a config that names a missing file: the key and both places looked
    broken = yaml.safe_load((workflow_dir() / "config" / "config.yaml").read_text())
    broken["cohort"]["population"] = "cohorts/populations/ghost.yaml"
    path = tmp_path / "ghost.yaml"
    path.write_text(yaml.safe_dump(broken))
    monkeypatch.setitem(TEMPLATES, "ghost", Template(str(path), "a config naming a lost file"))
    with pytest.raises(IsctError) as err:
        init_project(tmp_path / "g", "ghost")
    assert "key 'cohort.population' names 'cohorts/populations/ghost.yaml'" in str(err.value)
    assert str(tmp_path / "cohorts" / "populations" / "ghost.yaml") in str(err.value)
    assert not (tmp_path / "g").exists()


def test_the_coronary_template_is_a_self_contained_project(tmp_path):
    assert (workflow_dir() / TEMPLATES["coronary"].config).is_file()
    init_project(tmp_path / "c", "coronary")
    trial = load_config(tmp_path / "c" / "config.yaml", workdir=tmp_path / "c")
    for key, name in PROJECT_FILES.items():  # every file it names is the project's own copy
        value = named_files(trial).get(key)
        if value is not None:
            assert value == name and (tmp_path / "c" / name).is_file(), key
    assert trial["credibility"]["comparator_populations"] == "comparator_populations.csv"


def test_rewrite_keeps_comments_and_falls_back_to_a_dump_when_a_value_repeats():
    text = "# a trial\ncohort: {population: a.yaml, n: 5}  # flow style\nmodel:\n  card: 'b.yaml'\n"
    config = yaml.safe_load(text)
    renamed = {"cohort.population": "population.yaml", "model.card": "model/card.yaml"}
    out = _rewrite(text, config, renamed)
    assert out.startswith("# a trial\n") and "# flow style" in out
    assert yaml.safe_load(out) == {
        "cohort": {"population": "population.yaml", "n": 5},
        "model": {"card": "model/card.yaml"},
    }
    twice = "credibility:\n  comparators: c.csv\ncalibration:\n  comparators: c.csv\n"
    out = _rewrite(twice, yaml.safe_load(twice), {"credibility.comparators": "comparators.csv"})
    assert yaml.safe_load(out) == {
        "credibility": {"comparators": "comparators.csv"},
        "calibration": {"comparators": "c.csv"},
    }


@pytest.mark.slow
def test_the_blank_project_runs_as_generated(tmp_path):
    """`isct init p && cd p && isct run config.yaml`: the example external-solver model runs
    for every patient and arm, and a separate verify process reproduces it."""
    project = tmp_path / "p"
    assert main(["init", str(project)]) == 0
    proc = subprocess.run(
        [sys.executable, "-m", "isct", "run", "config.yaml", "--cores", "2"],
        capture_output=True, text=True, cwd=project, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    assert (project / "reports" / "my_trial" / "credibility_report.html").is_file()
    results = project / "results" / "my_trial"
    outcomes = xr.open_zarr(results / "outcomes.zarr", consolidated=False)
    assert outcomes.attrs["model"] == "example_orifice"
    assert (outcomes.sizes["arm"], outcomes.sizes["patient"]) == (2, 100)
    assert (outcomes["status"].values == 0).all()
    gradient = outcomes["mean_gradient_mmhg"].mean("patient").values
    assert gradient[0] > 1.5 * gradient[1]  # the 1.4 cm2 orifice costs more than the 2.0 cm2
    evidence = json.loads((results / "evidence" / "evidence_final.json").read_text())
    assert evidence["reproducibility"]["resimulation_match"] is True
    assert evidence["validation"]["n_comparators"] == 2
