"""The core knows no device: isct/, credibility/ and workflow/ name no built-in model's facts.

Device knowledge (names, inputs, outputs, events, derived classes, thresholds, subgroup bands)
lives in ``models/<model>/``, population specs, plans, comparators and trial configs. This
test collects the built-in models' vocabulary from the models themselves and from the
shipped trial configs, and fails on any mention of it in the core's code, templates, schemas
and rules. Device *data* the layout puts under ``credibility/plans/`` and
``credibility/comparators/`` is allowed there.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from models import get_model
from models.registry import _BUILTINS

CORE = ("isct", "credibility", "workflow")
#: Device data the repository layout keeps inside the credibility package.
DATA_DIRS = {("credibility", "plans"), ("credibility", "comparators")}
SUFFIXES = {".py", ".smk", ".yaml", ".yml", ".j2", ".html", ".rst", ".css", ".json"}
#: The generic external-solver adapter is part of the platform, not a device.
GENERIC_MODELS = {"external"}
#: Device words of the built-in trials (clinical vocabulary, device families, trials).
DEVICE_WORDS = (
    r"tavr", r"tavi", r"varc", r"ppm", r"prosthesis[- ]patient", r"annul\w*", r"leaflet\w*",
    r"sapien", r"evolut", r"balloon[_ -]expandable", r"self[_ -]expanding", r"aortic",
    r"valve\w*", r"ffr", r"coronar\w*", r"stenos\w*", r"lesion\w*", r"stent\w*", r"fame",
    r"angiograph\w*", r"echocardiograph\w*", r"bmi",
)  # fmt: skip
#: Numbers (band edges and thresholds of the shipped trials) are only flagged in a
#: comparison (``<= 430``, ``0.65 >``): a constant such as an alpha of 0.55 is no device fact.
COMPARISON = r"(?:[<>]=?|==)\s*{n}(?![\d.])|(?<![\d.]){n}\s*(?:[<>]=?|==)"


def model_vocabulary() -> set[str]:
    """Names of the built-in models and of everything they declare."""
    words: set[str] = set()
    for name in _BUILTINS:
        if name in GENERIC_MODELS:
            continue
        model = get_model(name)
        words.add(name)
        for declared in (model.inputs, model.outputs, model.events, model.derived_outputs):
            words |= set(declared)
        if model.size_output:
            words.add(model.size_output)
    # a one-word name (``treated``, ``cycles``) is plain English, not a device fact
    return {w for w in words if "_" in w} | {n for n in _BUILTINS if n not in GENERIC_MODELS}


def _numbers(value) -> set[str]:
    """Distinctive numbers only: small whole numbers (``n < 20``) are everyone's."""
    found = re.findall(r"\d+(?:\.\d+)?", str(value))
    return {m for m in found if "." in m or float(m) >= 100}


def trial_thresholds() -> set[str]:
    """Band edges and thresholds of the shipped trial configs (report subgroups, question)."""
    numbers: set[str] = set()
    for path in [
        REPO / "config" / "config.yaml",
        *(REPO / "config" / "trials").glob("*.yaml"),
    ]:
        report = (yaml.safe_load(path.read_text()) or {}).get("report") or {}
        for band in report.get("subgroups") or []:
            numbers |= _numbers(band.get("edges", []))
        question = report.get("question") or {}
        numbers |= _numbers((question.get("subgroup") or {}).get("where", ""))
        for p in question.get("proportions") or []:
            numbers |= _numbers(p.get("threshold", ""))
    return numbers


def core_files(root: Path) -> list[Path]:
    files = [root / "Snakefile"] if (root / "Snakefile").is_file() else []
    for top in CORE:
        for path in sorted((root / top).rglob("*")):
            rel = path.relative_to(root).parts
            if path.is_file() and path.suffix in SUFFIXES and tuple(rel[:2]) not in DATA_DIRS:
                files.append(path)
    return files


def mentions(root: Path, names: set[str], numbers: set[str]) -> list[str]:
    """``file:line: what`` for every mention of a device fact under the core folders."""
    patterns = [(n, re.compile(rf"(?<![A-Za-z0-9_]){re.escape(n)}(?![A-Za-z0-9_])")) for n in names]
    patterns += [(w, re.compile(rf"\b{w}\b", re.IGNORECASE)) for w in DEVICE_WORDS]
    patterns += [
        (n, re.compile(COMPARISON.format(n=re.escape(n)))) for n in sorted(numbers, key=float)
    ]
    found = []
    for path in core_files(root):
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for what, pattern in patterns:
                if pattern.search(line):
                    found.append(f"{path.relative_to(root)}:{i}: {what!r} in {line.strip()!r}")
    return found


@pytest.fixture(scope="module")
def vocabulary() -> tuple[set[str], set[str]]:
    return model_vocabulary(), trial_thresholds()


def test_the_vocabulary_is_the_built_in_devices(vocabulary):
    names, numbers = vocabulary
    assert {"tavr", "valve_size_mm", "ppm_class", "ppm_severe", "eoai_cm2_m2"} <= names
    assert {"430", "18.5"} <= numbers  # the small-annulus band, a BMI class edge


def test_core_mentions_no_device(vocabulary):
    found = mentions(REPO, *vocabulary)
    assert not found, "device knowledge in the core:\n" + "\n".join(found)


def test_the_check_finds_a_planted_mention(tmp_path, vocabulary):
    for top in CORE:
        (tmp_path / top).mkdir()
    (tmp_path / "isct" / "stage.py").write_text("share = (y['ppm_class'] == 2).mean()\n")
    (tmp_path / "credibility" / "table.py").write_text("small = area <= 430\n")
    (tmp_path / "workflow" / "rule.smk").write_text("# counts SAPIEN 3 sizes\n")
    (tmp_path / "credibility" / "plans").mkdir()  # data may name devices
    (tmp_path / "credibility" / "plans" / "p.yaml").write_text("question: TAVR in small annuli\n")
    found = mentions(tmp_path, *vocabulary)
    assert sorted(f.split(":")[0] for f in found) == [
        "credibility/table.py",
        "isct/stage.py",
        "workflow/rule.smk",
    ], found
