"""``isct verify`` checks the folder it is given: a copy that was moved or renamed is checked
itself, never the original it came from (issue 16)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import zarr

from isct.cli import main
from isct.verify import verify

pytestmark = pytest.mark.filterwarnings("ignore:Object at .snakemake_timestamp")

REPORT = "outputs.credibility_report.html"


def _copy(tiny_run: Path, dest: Path) -> Path:
    shutil.copytree(
        tiny_run / "results" / "ci_tiny", dest, ignore=shutil.ignore_patterns("*_runs.zarr")
    )
    return dest


def _tamper(results: Path) -> str:
    """Add 0.5 to one stored gradient inside the copy; the chunk's path in the manifest."""
    values = zarr.open_group(results / "outcomes.zarr", mode="r+")["mean_gradient_mmhg"]
    values[1, 3] = values[1, 3] + 0.5
    return "outcomes.zarr/mean_gradient_mmhg/c/1/0"


def test_a_copied_moved_and_renamed_folder_verifies_against_itself(tiny_run, tmp_path):
    copied = _copy(tiny_run, tmp_path / "copy" / "ci_tiny")
    moved = tmp_path / "moved" / "submission"
    moved.parent.mkdir()
    shutil.move(copied, moved)
    result = verify(moved, sample=4, seed=1)
    assert result.problems() == [] and result.hash_mismatches == []
    assert result.resimulation is not None and len(result.resimulation.patients) == 4
    # the report lies outside the results folder and no run directory holds it: listed
    assert result.unchecked == {REPORT: "reports/ci_tiny/credibility_report.html"}


def test_a_tampered_chunk_in_a_renamed_copy_fails_naming_the_copy(
    tiny_run, tmp_path, monkeypatch, capsys
):
    copy = _copy(tiny_run, tmp_path / "renamed")
    chunk = _tamper(copy)
    # the bug of issue 16: run from the original run directory, verify hashed the original
    monkeypatch.chdir(tiny_run)
    assert main(["verify", str(copy), "--sample", "0"]) == 1
    out = capsys.readouterr().out
    assert f"modified: {(copy / chunk).resolve().as_posix()}" in out
    assert "1 difference(s)" in out and "outputs.outcomes.zarr" in out
    # the original is untouched and still passes
    assert verify(tiny_run / "results" / "ci_tiny", sample=0).problems() == []


def test_a_copy_inside_another_run_directory_checks_its_own_report(tiny_run, tmp_path):
    run = tmp_path / "run"
    _copy(tiny_run, run / "results" / "ci_tiny")
    shutil.copytree(tiny_run / "reports", run / "reports")
    assert verify(run / "results" / "ci_tiny", sample=0).unchecked == {}
    report = run / "reports" / "ci_tiny" / "credibility_report.html"
    report.write_text(report.read_text().replace("</html>", "<!-- edited --></html>"))
    found = verify(run / "results" / "ci_tiny", sample=0).hash_mismatches
    assert [(m.kind, m.entry) for m in found] == [("modified", REPORT)]


def test_root_makes_every_outside_entry_required(tiny_run, tmp_path, capsys):
    copy = _copy(tiny_run, tmp_path / "alone")
    empty = tmp_path / "empty_run_dir"
    empty.mkdir()
    result = verify(copy, sample=0, root=empty)
    assert result.unchecked == {}
    assert [(m.kind, m.entry) for m in result.hash_mismatches] == [("missing", REPORT)]
    assert main(["verify", str(copy), "--sample", "0", "--json", str(tmp_path / "v.json")]) == 0
    assert "not checked" in capsys.readouterr().out
    assert json.loads((tmp_path / "v.json").read_text())["unchecked"] == {
        REPORT: "reports/ci_tiny/credibility_report.html"
    }
