"""Stage records and the chain they form: which file each stage read and wrote.

``record_stage`` is called by every workflow stage: it writes
``results/<trial>/provenance/<stage>.json`` with the SHA-256 of what the stage read and what
it wrote. ``check_stage_chain`` follows the links between these records: every file a stage
read inside the results folder must have the hash that the stage which wrote it recorded, so
a file changed between two stages is named with the stage that read it and the stage that
wrote it (software quality assurance evidence of the report).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .jsonio import read_json
from .provenance import ManifestError, diff_files, hash_path

__all__ = ["STAGE_RECORDS", "ChainMismatch", "check_stage_chain", "record_stage"]

#: Folder of the stage records inside a results folder (``provenance/<stage>.json``).
STAGE_RECORDS = "provenance"
STAGE_RECORD_VERSION = 1
_STAGE_NAME = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True)
class ChainMismatch:
    """One broken link of the stage chain: a stage read a file other than the one written.

    Attributes
    ----------
    reader : str
        Stage that read the file (``provenance/<reader>.json``).
    writer : str or None
        Stage that recorded writing it; None when no stage record lists the file.
    path : str
        The file, relative to the results folder (inside a store: ``cohort.zarr/age_yr/c/0``).
    kind : {"modified", "missing", "added", "unrecorded"}
        ``modified``: the reader saw other bytes than the writer wrote; ``missing``: a file the
        writer wrote was absent when read; ``added``: a file in a store the writer did not
        write; ``unrecorded``: no stage recorded writing this input.
    expected, actual : str or None
        SHA-256 recorded by the writer and by the reader (None when absent).
    """

    reader: str
    writer: str | None
    path: str
    kind: str
    expected: str | None
    actual: str | None

    def __str__(self) -> str:
        by = f"written by stage {self.writer}" if self.writer else "written by no recorded stage"
        return f"stage {self.reader} read {self.path}: {self.kind} ({by})"

    def to_dict(self) -> dict[str, str | None]:
        """The fields as a JSON-ready dict (one row of the evidence table)."""
        return asdict(self)


def _stage_entry(
    value: str | os.PathLike | Mapping[str, Any], results: Path, label: str
) -> dict[str, Any]:
    """Record entry of one path: ``path`` relative to the results folder (absolute outside)."""
    if isinstance(value, Mapping):  # an entry this stage recorded before: not hashed again
        if not {"path", "kind", "sha256"} <= set(value):
            raise ManifestError(f"{label}: an entry needs 'path', 'kind' and 'sha256'")
        return dict(value)
    p = Path(value).resolve()
    if not p.exists():
        raise ManifestError(f"{label}: path '{value}' does not exist")
    try:
        shown = p.relative_to(results).as_posix()
    except ValueError:
        shown = p.as_posix()
    return {"path": shown, **hash_path(p)}


def record_stage(
    results_dir: str | os.PathLike,
    stage: str,
    *,
    inputs: Mapping[str, str | os.PathLike | Mapping[str, Any]],
    outputs: Mapping[str, str | os.PathLike | Mapping[str, Any]],
) -> dict[str, Any]:
    """Write ``<results_dir>/provenance/<stage>.json``: the SHA-256 of what a stage read and wrote.

    Paths inside the results folder are recorded relative to it (``cohort.zarr``,
    ``evidence/validation.csv``), so the folder can be moved; paths outside it (population
    spec, comparators, the report) absolutely. Directories (zarr stores) are hashed file by
    file. :func:`check_stage_chain` links each input to the stage that wrote it.

    Parameters
    ----------
    results_dir : str or path
        The trial's results folder (``results/<trial>``).
    stage : str
        Stage name (``cohort``, ``simulate``, ``uq``, ``sensitivity``, ``credibility``,
        ``report``): lower case letters, digits and ``_``.
    inputs, outputs : mapping of str to path or entry
        Named files or directories the stage read and wrote. A value may also be an entry of
        a record this stage wrote earlier in the same run (``record["inputs"][name]``), which
        is kept as it is rather than hashed again: a stage that checks the chain before it
        starts records its inputs first and its outputs at the end.

    Returns
    -------
    dict
        The record written: ``stage``, ``created_utc``, ``inputs`` and ``outputs`` (name →
        ``{"path", "kind", "sha256", "files" | "bytes"}``).

    Raises
    ------
    ManifestError
        If the stage name is not allowed or a path does not exist (names stage and key).

    Examples
    --------
    >>> record_stage("results/t", "simulate", inputs={"cohort": "results/t/cohort.zarr"},
    ...              outputs={"outcomes": "results/t/outcomes.zarr"})  # doctest: +SKIP
    """
    if not _STAGE_NAME.fullmatch(stage):
        raise ManifestError(
            f"stage name {stage!r}: use lower case letters, digits and '_' (e.g. 'simulate')"
        )
    results = Path(results_dir).resolve()
    record = {
        "record_version": STAGE_RECORD_VERSION,
        "stage": stage,
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="microseconds"),
        "inputs": {
            k: _stage_entry(v, results, f"stage {stage}: inputs.{k}") for k, v in inputs.items()
        },
        "outputs": {
            k: _stage_entry(v, results, f"stage {stage}: outputs.{k}") for k, v in outputs.items()
        },
    }
    target = results / STAGE_RECORDS / f"{stage}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(target)
    return record


def _read_record(path: Path) -> dict[str, Any]:
    record = read_json(path, "stage record", ManifestError)
    for key in ("stage", "created_utc", "inputs", "outputs"):
        if key not in record:
            raise ManifestError(
                f"{path}: key '{key}' missing; required: stage, created_utc, inputs, outputs"
            )
    return record


def _link(reader: str, writer: str, wrote: Mapping[str, Any], read: Mapping[str, Any]):
    """Every difference between what ``writer`` wrote and what ``reader`` read of one path."""
    path = read["path"]
    if wrote["kind"] == "dir" and read["kind"] == "dir":
        return [
            ChainMismatch(reader, writer, f"{path}/{rel}", kind, expected, actual)
            for rel, kind, expected, actual in diff_files(wrote["files"], read["files"])
        ]
    if wrote["kind"] != read["kind"] or wrote["sha256"] != read["sha256"]:
        return [ChainMismatch(reader, writer, path, "modified", wrote["sha256"], read["sha256"])]
    return []


def check_stage_chain(
    results_dir: str | os.PathLike, *, stages: Iterable[str] | None = None
) -> list[ChainMismatch]:
    """Every broken link between the stage records of a results folder.

    For each input a stage recorded inside the results folder, the stage that recorded
    writing that path is found (the latest other stage, by record time), and its hashes are
    compared with the reader's, file by file for a store. Nothing is hashed here: the
    records hold what each stage saw when it ran, so the check names the stage that read a
    file changed after it was written, even when the file has since been restored.

    Parameters
    ----------
    results_dir : str or path
        The trial's results folder.
    stages : iterable of str, optional
        Only these stages' records are used, as readers and as writers (a stage checking the
        chain upstream of itself, while sibling stages may still be running). Default: every
        record in ``provenance/``.

    Returns
    -------
    list of ChainMismatch
        Empty when every file each stage read is the one its writer recorded.

    Raises
    ------
    ManifestError
        If a record is not valid JSON or lacks a required key.
    """
    folder = Path(results_dir) / STAGE_RECORDS
    if stages is None:
        files = sorted(folder.glob("*.json"))
    else:
        files = [folder / f"{s}.json" for s in stages if (folder / f"{s}.json").is_file()]
    records = sorted((_read_record(f) for f in files), key=lambda r: r["created_utc"])
    written: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
    for record in records:
        for entry in record["outputs"].values():
            written.setdefault(entry["path"], []).append((record["stage"], entry))
    broken: list[ChainMismatch] = []
    for record in records:
        reader = record["stage"]
        for entry in record["inputs"].values():
            if Path(entry["path"]).is_absolute():
                continue  # outside the results folder: no stage writes it
            writers = [(s, e) for s, e in written.get(entry["path"], []) if s != reader]
            if not writers:
                broken.append(
                    ChainMismatch(reader, None, entry["path"], "unrecorded", None, entry["sha256"])
                )
                continue
            writer, wrote = writers[-1]
            broken += _link(reader, writer, wrote, entry)
    return broken
