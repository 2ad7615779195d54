"""Tests of isct.provenance: stage records and their chain, manifest of hashes; tampering."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from isct.chain import ChainMismatch, check_stage_chain, record_stage
from isct.provenance import (
    ManifestError,
    hash_path,
    source_path,
    verify_hashes,
    write_manifest,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(tmp_path):
    """A miniature project: config, spec, model sources, a zarr store and a table."""
    (tmp_path / "config.yaml").write_text("trial: demo\nseed: 7\n")
    (tmp_path / "spec.yaml").write_text("age_yr: {dist: normal, mean: 79, sd: 6}\n")
    model = tmp_path / "model"
    (model / "__pycache__").mkdir(parents=True)
    (model / "__init__.py").write_text("X = 1\n")
    (model / "core.py").write_text("def f():\n    return 2\n")
    (model / "__pycache__" / "core.cpython-311.pyc").write_bytes(b"\x00cache")
    results = tmp_path / "results" / "demo"
    results.mkdir(parents=True)
    ds = xr.Dataset(
        {"eoa_cm2": (("arm", "patient"), np.arange(20.0).reshape(2, 10))},
        coords={"arm": [0, 1], "patient": np.arange(10)},
    )
    ds.to_zarr(results / "outcomes.zarr", mode="w", encoding={"eoa_cm2": {"chunks": (1, 5)}})
    (results / "validation.csv").write_text("id,E\nx,0.1\n")
    return tmp_path


def _write(project: Path) -> Path:
    results = project / "results" / "demo"
    return write_manifest(
        results,
        config_path="config.yaml",
        inputs={"population_spec": "spec.yaml", "model_source": "model"},
        outputs={"outcomes": results / "outcomes.zarr", "validation": results / "validation.csv"},
        seeds={"trial": 7, "sobol": 11},
        extra={"note": "test"},
        root=project,
    )


def test_manifest_content(project):
    path = _write(project)
    m = json.loads(path.read_text())
    assert path == project / "results" / "demo" / "manifest.json"
    assert m["trial"] == "demo" and m["results_dir"] == "results/demo"
    assert m["config"]["path"] == "config.yaml"
    expected = hashlib.sha256((project / "config.yaml").read_bytes()).hexdigest()
    assert m["config"]["sha256"] == expected
    assert m["inputs"]["model_source"]["kind"] == "dir"
    # caches are not content
    assert set(m["inputs"]["model_source"]["files"]) == {"__init__.py", "core.py"}
    assert m["outputs"]["outcomes"]["path"] == "results/demo/outcomes.zarr"
    assert any(k.startswith("eoa_cm2/") for k in m["outputs"]["outcomes"]["files"])
    assert m["seeds"] == {"trial": 7, "sobol": 11}
    for pkg in ("numpy", "xarray", "zarr", "dask", "SALib", "chaospy", "snakemake", "isct"):
        assert pkg in m["packages"]
    assert m["packages"]["numpy"] == np.__version__
    assert m["platform"]["python"]
    assert m["git"]["commit"] is None  # tmp dir is not a git repository
    assert m["extra"] == {"note": "test"}
    assert verify_hashes(project / "results" / "demo", root=project) == []


def test_git_commit_recorded_inside_repository(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("a: 1\n")
    path = write_manifest(
        tmp_path / "r", config_path=cfg, inputs={}, outputs={}, seeds={}, root=REPO
    )
    git = json.loads(path.read_text())["git"]
    assert len(git["commit"]) == 40 and isinstance(git["dirty"], bool)


def test_directory_hash_is_deterministic_and_content_based(project):
    store = project / "results" / "demo" / "outcomes.zarr"
    copy = project / "copy.zarr"
    shutil.copytree(store, copy)
    assert hash_path(store)["sha256"] == hash_path(copy)["sha256"]
    # rewriting the same data with the same encoding gives the same digest
    ds = xr.open_zarr(store).load()
    again = project / "again.zarr"
    ds.to_zarr(again, mode="w", encoding={"eoa_cm2": {"chunks": (1, 5)}})
    assert hash_path(again)["sha256"] == hash_path(store)["sha256"]
    chunk = sorted(p for p in (copy / "eoa_cm2").rglob("*") if p.is_file() and p.suffix != ".json")[
        0
    ]
    chunk.write_bytes(chunk.read_bytes() + b"x")
    assert hash_path(store)["sha256"] != hash_path(copy)["sha256"]


def test_tampering_names_each_file(project):
    _write(project)
    results = project / "results" / "demo"
    # 1. modify one zarr chunk
    chunks = sorted(
        p
        for p in (results / "outcomes.zarr" / "eoa_cm2").rglob("*")
        if p.is_file() and p.name != "zarr.json"
    )
    target = chunks[-1]
    target.write_bytes(b"tampered")
    # 2. edit the config, 3. delete the validation table, 4. add a file to model source
    (project / "config.yaml").write_text("trial: demo\nseed: 8\n")
    (results / "validation.csv").unlink()
    (project / "model" / "extra.py").write_text("Y = 3\n")
    found = {(m.kind, m.path, m.entry) for m in verify_hashes(results, root=project)}
    rel_chunk = (
        "results/demo/outcomes.zarr/" + target.relative_to(results / "outcomes.zarr").as_posix()
    )
    assert found == {
        ("modified", rel_chunk, "outputs.outcomes"),
        ("modified", "config.yaml", "config"),
        ("missing", "results/demo/validation.csv", "outputs.validation"),
        ("added", "model/extra.py", "inputs.model_source"),
    }
    text = " | ".join(str(m) for m in verify_hashes(results, root=project))
    assert "config.yaml" in text and target.name in text


def test_errors_name_path(project, tmp_path):
    with pytest.raises(ManifestError, match="inputs.spec.*nope.yaml"):
        write_manifest(
            project / "r", config_path="config.yaml", inputs={"spec": "nope.yaml"},
            outputs={}, seeds={}, root=project,
        )  # fmt: skip
    with pytest.raises(ManifestError, match="JSON-serialisable"):
        write_manifest(
            project / "r", config_path="config.yaml", inputs={}, outputs={},
            seeds={"rng": object()}, root=project,
        )  # fmt: skip
    with pytest.raises(ManifestError, match="cannot read manifest"):
        verify_hashes(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        verify_hashes(tmp_path / "bad")


def test_source_path_of_a_class_is_its_package_directory():
    from credibility.plan import Plan

    assert source_path(Plan) == REPO / "credibility"
    assert source_path(json) == Path(json.__file__).parent
    with pytest.raises(ManifestError, match="no source file"):
        source_path(len)


def test_write_manifest_reuses_hashes_the_stage_just_computed(project):
    results = project / "results" / "demo"
    table = results / "validation.csv"
    known = {"kind": "file", "sha256": "0" * 64, "bytes": 1}
    write_manifest(
        results, config_path="config.yaml", inputs={}, outputs={"validation": table},
        seeds={}, root=project, hashed={table: known},
    )  # fmt: skip
    entry = json.loads((results / "manifest.json").read_text())["outputs"]["validation"]
    assert entry == {**known, "path": "results/demo/validation.csv"}  # not hashed again
    assert [m.kind for m in verify_hashes(results, root=project)] == ["modified"]


def test_snakemake_directory_marker_is_not_content(project):
    store = project / "results" / "demo" / "outcomes.zarr"
    before = hash_path(store)
    (store / ".snakemake_timestamp").write_text("")
    assert hash_path(store) == before


# ---------------------------------------------------------------------------- stage chain


@pytest.fixture
def stages(tmp_path):
    """cohort -> simulate, recorded: a spec outside the results folder, two stores inside."""
    spec = tmp_path / "spec.yaml"
    spec.write_text("age_yr: {dist: normal, mean: 79, sd: 6}\n")
    results = tmp_path / "results" / "t"
    cohort = xr.Dataset(
        {"age_yr": ("patient", np.linspace(70.0, 90.0, 10))}, coords={"patient": np.arange(10)}
    )
    cohort.to_zarr(
        results / "cohort.zarr", encoding={"age_yr": {"chunks": (4,)}}, consolidated=False
    )
    record_stage(
        results, "cohort", inputs={"spec": spec}, outputs={"cohort": results / "cohort.zarr"}
    )
    outcomes = xr.Dataset({"y": ("patient", cohort["age_yr"].values * 2)})
    outcomes.to_zarr(results / "outcomes.zarr", consolidated=False)
    record_stage(
        results,
        "simulate",
        inputs={"cohort": results / "cohort.zarr"},
        outputs={"outcomes": results / "outcomes.zarr"},
    )
    return results


def test_stage_records_hash_what_each_stage_read_and_wrote(stages):
    record = json.loads((stages / "provenance" / "simulate.json").read_text())
    assert record["stage"] == "simulate"
    cohort = record["inputs"]["cohort"]
    assert cohort["path"] == "cohort.zarr"  # relative: the results folder can move
    assert cohort["sha256"] == hash_path(stages / "cohort.zarr")["sha256"]
    assert "age_yr/c/0" in cohort["files"]
    spec = json.loads((stages / "provenance" / "cohort.json").read_text())["inputs"]["spec"]
    assert Path(spec["path"]).is_absolute()  # outside the results folder
    assert check_stage_chain(stages) == []


def test_a_chunk_changed_between_two_stages_names_reader_writer_and_chunk(stages):
    before = hash_path(stages / "cohort.zarr")["files"]["age_yr/c/1"]
    age = zarr.open_group(stages / "cohort.zarr", mode="r+")["age_yr"]
    original = age[5]
    age[5] = original + 1.0  # patient 5 lies in the second chunk (4 patients a chunk)
    record_stage(
        stages,
        "uq",
        inputs={"cohort": stages / "cohort.zarr", "outcomes": stages / "outcomes.zarr"},
        outputs={},
    )
    after = hash_path(stages / "cohort.zarr")["files"]["age_yr/c/1"]
    expected = [ChainMismatch("uq", "cohort", "cohort.zarr/age_yr/c/1", "modified", before, after)]
    assert check_stage_chain(stages) == expected
    assert "stage uq read cohort.zarr/age_yr/c/1: modified (written by stage cohort)" == str(
        expected[0]
    )
    # the records keep what each stage saw: restoring the file does not mend the chain
    age[5] = original
    assert check_stage_chain(stages) == expected
    # a stage that checks only its upstream does not see a sibling's record
    assert check_stage_chain(stages, stages=("cohort", "simulate")) == []


def test_missing_added_and_unrecorded_files_break_the_chain(stages):
    chunk = stages / "outcomes.zarr" / "y" / "c" / "0"
    chunk.unlink()  # zarr would read the fill value: the data is gone
    (stages / "outcomes.zarr" / "y" / "c" / "9").write_bytes(b"extra")
    (stages / "notes.csv").write_text("x\n1\n")
    record_stage(
        stages,
        "report",
        inputs={"outcomes": stages / "outcomes.zarr", "notes": stages / "notes.csv"},
        outputs={},
    )
    found = {(m.reader, m.writer, m.path, m.kind) for m in check_stage_chain(stages)}
    assert found == {
        ("report", "simulate", "outcomes.zarr/y/c/0", "missing"),
        ("report", "simulate", "outcomes.zarr/y/c/9", "added"),
        ("report", None, "notes.csv", "unrecorded"),
    }


def test_a_stage_recording_twice_keeps_its_inputs_without_hashing_again(stages):
    first = record_stage(
        stages, "credibility", inputs={"cohort": stages / "cohort.zarr"}, outputs={}
    )
    (stages / "evidence.json").write_text("{}")
    second = record_stage(
        stages,
        "credibility",
        inputs={"cohort": {**first["inputs"]["cohort"], "sha256": "kept"}},
        outputs={"evidence": stages / "evidence.json"},
    )
    assert second["inputs"]["cohort"]["sha256"] == "kept"
    assert second["outputs"]["evidence"]["path"] == "evidence.json"


def test_stage_record_errors_name_stage_and_key(stages):
    with pytest.raises(ManifestError, match="stage name 'Sim ulate'"):
        record_stage(stages, "Sim ulate", inputs={}, outputs={})
    with pytest.raises(ManifestError, match="stage uq: inputs.cohort: path '.*nope.zarr'"):
        record_stage(stages, "uq", inputs={"cohort": stages / "nope.zarr"}, outputs={})
    (stages / "provenance" / "uq.json").write_text("{not json")
    with pytest.raises(ManifestError, match="uq.json: not valid JSON"):
        check_stage_chain(stages)
    (stages / "provenance" / "uq.json").write_text('{"stage": "uq"}')
    with pytest.raises(ManifestError, match="key 'created_utc' missing"):
        check_stage_chain(stages)
