"""Provenance of a trial: the manifest of hashes, versions, seeds and platform.

``write_manifest`` records the SHA-256 of the trial config, every input (population specs,
model source files, comparator data, plans) and every output (zarr stores, tables, reports)
in ``results/<trial>/manifest.json``; ``verify_hashes`` recomputes them and names every file
that differs, is missing, or was added to a hashed directory. Directories (zarr stores, model
packages) are hashed deterministically over their files in sorted relative-path order, and
each file's hash is kept, so a tampered chunk is named individually.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import inspect
import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from .errors import IsctError
from .jsonio import read_json

__all__ = [
    "MANIFEST_NAME",
    "ManifestError",
    "Mismatch",
    "check_manifest",
    "hash_path",
    "package_versions",
    "sha256_file",
    "source_path",
    "verify_hashes",
    "write_manifest",
]

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
#: Distributions whose versions are recorded (import name differs for some: SALib -> salib).
PACKAGES = (
    "isct",
    "numpy",
    "scipy",
    "pandas",
    "xarray",
    "zarr",
    "dask",
    "distributed",
    "SALib",
    "chaospy",
    "numba",
    "snakemake",
    "jinja2",
    "matplotlib",
)
#: Files never hashed inside directories (caches and editor/OS litter, not content).
#: ``.snakemake_timestamp`` is the marker Snakemake adds to a ``directory()`` output after its
#: job (cohort.zarr): it appears between two stages without anyone changing the data.
_IGNORED_NAMES = frozenset({".DS_Store", "Thumbs.db", ".snakemake_timestamp"})
_IGNORED_DIRS = frozenset({"__pycache__", ".pytest_cache", ".ipynb_checkpoints"})
_IGNORED_SUFFIXES = (".pyc", ".pyo")


class ManifestError(IsctError, RuntimeError):
    """The manifest cannot be written or read (missing path, bad JSON); names the file/key."""


@dataclass(frozen=True)
class Mismatch:
    """One difference between the manifest and the files on disk.

    Attributes
    ----------
    entry : str
        Manifest entry (``config``, ``inputs.<name>``, ``outputs.<name>``).
    path : str
        The file that differs (for a directory entry, the file inside it).
    kind : {"modified", "missing", "added"}
        What happened to the file.
    expected, actual : str or None
        SHA-256 recorded and found (None when absent).
    file : str or None
        Where the file was looked for, when that is not ``path`` (a results folder that was
        copied, moved or renamed, a bundle).
    """

    entry: str
    path: str
    kind: str
    expected: str | None
    actual: str | None
    file: str | None = None

    def __str__(self) -> str:
        if self.file is None or self.file == self.path:
            return f"{self.kind}: {self.path} ({self.entry})"
        return f"{self.kind}: {self.file} ({self.entry}, recorded as {self.path})"


def sha256_file(path: str | Path) -> str:
    """SHA-256 of one file's bytes (hex)."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _walk(root: Path, exclude: frozenset[Path]) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _IGNORED_DIRS)
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if name in _IGNORED_NAMES or name.endswith(_IGNORED_SUFFIXES):
                continue
            if p.resolve() in exclude:
                continue
            yield p


def hash_path(path: str | Path, *, exclude: frozenset[Path] = frozenset()) -> dict[str, Any]:
    """SHA-256 of a file, or of a directory over its files in sorted order.

    The directory digest is the SHA-256 of the lines ``"<relative posix path>\\0<file
    sha256>\\n"`` in sorted path order, so it depends on names and contents only (not on
    timestamps, inode order or the platform's path separator).

    Parameters
    ----------
    path : str or Path
        File or directory (e.g. a zarr store).
    exclude : frozenset of Path, optional
        Resolved paths to leave out (the manifest itself, when it lies inside).

    Returns
    -------
    dict
        ``{"kind": "file", "sha256": …, "bytes": …}`` or ``{"kind": "dir", "sha256": …,
        "files": {relpath: sha256}}``.

    Raises
    ------
    ManifestError
        If the path does not exist.
    """
    path = Path(path)
    if path.is_file():
        return {"kind": "file", "sha256": sha256_file(path), "bytes": path.stat().st_size}
    if path.is_dir():
        files = {p.relative_to(path).as_posix(): sha256_file(p) for p in _walk(path, exclude)}
        digest = hashlib.sha256()
        for rel in sorted(files):
            digest.update(f"{rel}\0{files[rel]}\n".encode())
        return {"kind": "dir", "sha256": digest.hexdigest(), "files": files}
    raise ManifestError(f"cannot hash '{path}': no such file or directory")


def source_path(obj: Any) -> Path:
    """Directory of the source files that define ``obj`` (a class, function or module).

    For an object defined in a package module (``models.<name>.model.<Class>``) this is the
    package directory (``models/<name>``), so that every source file of a model — kernel,
    device tables, card — enters the manifest as one hashed directory entry.

    Parameters
    ----------
    obj : class, function or module
        E.g. the model class of the trial.

    Returns
    -------
    Path
        Directory containing the module file.

    Raises
    ------
    ManifestError
        If no source file can be found (built-ins, interactively defined objects).
    """
    module = obj if inspect.ismodule(obj) else inspect.getmodule(obj)
    try:
        file = inspect.getsourcefile(module) if module is not None else None
    except TypeError:
        file = None
    if file is None:
        raise ManifestError(f"no source file for {obj!r}; pass its path to write_manifest")
    return Path(file).resolve().parent


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` (``"not installed"`` when absent)."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _git(root: Path) -> dict[str, Any]:
    def run(*args: str) -> str | None:
        try:
            res = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return res.stdout.strip()

    commit = run("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    status = run("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def _rel(path: Path, root: Path) -> str:
    path = path.resolve()
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _entry(
    path: str | Path,
    root: Path,
    exclude: frozenset[Path],
    label: str,
    hashed: Mapping[Path, Mapping[str, Any]],
) -> dict[str, Any]:
    p = Path(path)
    if not p.is_absolute():
        p = root / p
    if not p.exists():
        raise ManifestError(f"manifest entry '{label}': path '{path}' does not exist")
    known = hashed.get(p.resolve()) or hash_path(p, exclude=exclude)
    return {**known, "path": _rel(p, root)}


def write_manifest(
    results_dir: str | Path,
    *,
    config_path: str | Path,
    inputs: Mapping[str, str | Path],
    outputs: Mapping[str, str | Path],
    seeds: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
    root: str | Path | None = None,
    hashed: Mapping[Path, Mapping[str, Any]] | None = None,
    merkle: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``<results_dir>/manifest.json`` with hashes, versions, seeds, git and platform.

    Parameters
    ----------
    results_dir : str or Path
        The trial's results directory (``results/<trial>``); created if needed.
    config_path : str or Path
        Trial config file.
    inputs : mapping of str to path
        Named inputs: population specs, model source files or directories, comparator CSVs,
        credibility plan, … Directories are hashed file by file.
    outputs : mapping of str to path
        Named outputs: ``cohort.zarr``, ``outcomes.zarr``, evidence files, reports, …
    seeds : mapping
        Every seed used (trial seed, UQ/SA seeds, …); JSON-serialisable.
    extra : mapping, optional
        Anything else to record (JSON-serialisable), stored under ``"extra"``.
    root : str or Path, optional
        Directory relative to which paths are recorded and later resolved (default: the
        current working directory, i.e. the project root when run by the workflow).
    hashed : mapping of Path to dict, optional
        Hashes the calling stage computed a moment ago (resolved path → :func:`hash_path`
        result or stage-record entry), used instead of hashing those paths again.
    merkle : mapping, optional
        The per-patient hash tree's summary (:func:`isct.merkle.tree_summary`), kept under
        ``"merkle"``.

    Returns
    -------
    Path
        The manifest written.

    Raises
    ------
    ManifestError
        If a path does not exist or a value is not JSON-serialisable.
    """
    root_p = Path(root or Path.cwd()).resolve()
    results = Path(results_dir)
    if not results.is_absolute():
        results = root_p / results
    results.mkdir(parents=True, exist_ok=True)
    target = results / MANIFEST_NAME
    exclude = frozenset({target.resolve()})
    known = {Path(k).resolve(): v for k, v in (hashed or {}).items()}
    manifest: dict[str, Any] = {
        "manifest_version": MANIFEST_VERSION,
        "trial": results.name,
        # entries under this path are resolved against the results folder being checked
        "results_dir": _rel(results, root_p),
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "config": _entry(config_path, root_p, exclude, "config", known),
        "inputs": {k: _entry(v, root_p, exclude, f"inputs.{k}", known) for k, v in inputs.items()},
        "outputs": {
            k: _entry(v, root_p, exclude, f"outputs.{k}", known) for k, v in outputs.items()
        },
        "seeds": dict(seeds),
        "packages": package_versions(),
        "git": _git(root_p),
        "platform": {
            "python": sys.version.split()[0],
            "implementation": platform.python_implementation(),
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
            "platform": platform.platform(),
        },
        "extra": dict(extra or {}),
    }
    if merkle is not None:
        manifest["merkle"] = dict(merkle)
    try:
        text = json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ManifestError(f"{target}: seeds/extra must be JSON-serialisable: {exc}") from exc
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    tmp.replace(target)
    return target


def _check(
    label: str, recorded: Mapping[str, Any], path: Path, exclude: frozenset[Path], named: bool
):
    """Mismatches of one manifest entry against ``path`` (where it is now; ``named``: say so)."""
    shown = recorded["path"]
    file = path.as_posix() if named and path.as_posix() != shown else None
    if recorded["kind"] == "file":
        if not path.is_file():
            return [Mismatch(label, shown, "missing", recorded["sha256"], None, file)]
        actual = sha256_file(path)
        if actual != recorded["sha256"]:
            return [Mismatch(label, shown, "modified", recorded["sha256"], actual, file)]
        return []
    if not path.is_dir():
        return [Mismatch(label, shown, "missing", recorded["sha256"], None, file)]
    now = hash_path(path, exclude=exclude)["files"]
    return [
        Mismatch(
            label,
            f"{shown}/{rel}",
            kind,
            expected,
            actual,
            None if file is None else f"{file}/{rel}",
        )
        for rel, kind, expected, actual in diff_files(recorded["files"], now)
    ]


def diff_files(
    before: Mapping[str, str], now: Mapping[str, str]
) -> Iterator[tuple[str, str, str | None, str | None]]:
    """``(relpath, kind, expected, actual)`` for every file of a directory that differs."""
    for rel in sorted(set(before) | set(now)):
        if rel not in now:
            yield rel, "missing", before[rel], None
        elif rel not in before:
            yield rel, "added", None, now[rel]
        elif before[rel] != now[rel]:
            yield rel, "modified", before[rel], now[rel]


def _entries(manifest: Mapping[str, Any], target: Path) -> Iterator[tuple[str, Mapping]]:
    for key in ("config", "inputs", "outputs"):
        if key not in manifest:
            raise ManifestError(f"{target}: key '{key}' missing; required: config, inputs, outputs")
    yield "config", manifest["config"]
    for group in ("inputs", "outputs"):
        for name, recorded in sorted(manifest[group].items()):
            yield f"{group}.{name}", recorded


def check_manifest(
    manifest_path: str | Path,
    locate: Callable[[str, str], Path | None],
    *,
    name_files: bool = True,
) -> tuple[list[Mismatch], dict[str, str]]:
    """Recompute every hash of a manifest at the places ``locate`` gives.

    Parameters
    ----------
    manifest_path : str or Path
        The ``manifest.json`` to check.
    locate : callable
        ``locate(entry, recorded_path)`` returns where the entry's file or directory is now,
        or None when it cannot be looked for (the entry is then not checked).
    name_files : bool, default True
        Give every mismatch the ``file`` where it was found (when that is not the recorded
        path).

    Returns
    -------
    mismatches : list of Mismatch
        Files modified, missing, or added inside a hashed directory.
    unchecked : dict of str to str
        Entry → recorded path of every entry ``locate`` had no place for.

    Raises
    ------
    ManifestError
        If the manifest is missing or not valid JSON, or lacks a required key.
    """
    target = Path(manifest_path)
    manifest = read_json(target, "manifest", ManifestError)
    exclude = frozenset({target.resolve()})
    mismatches: list[Mismatch] = []
    unchecked: dict[str, str] = {}
    for label, recorded in _entries(manifest, target):
        path = locate(label, recorded["path"])
        if path is None:
            unchecked[label] = recorded["path"]
        else:
            mismatches += _check(label, recorded, path, exclude, name_files)
    return mismatches, unchecked


def verify_hashes(results_dir: str | Path, *, root: str | Path | None = None) -> list[Mismatch]:
    """Recompute every hash in ``<results_dir>/manifest.json`` and list the differences.

    Every recorded relative path is resolved against ``root``; :func:`isct.verify.verify`
    resolves the results folder's own entries against the folder instead.

    Parameters
    ----------
    results_dir : str or Path
        Directory holding ``manifest.json``.
    root : str or Path, optional
        Directory the recorded relative paths are resolved against (default: current
        working directory, as for :func:`write_manifest`).

    Returns
    -------
    list of Mismatch
        One entry per file that is modified, missing, or added inside a hashed directory;
        empty when everything matches.

    Raises
    ------
    ManifestError
        If the manifest is missing or not valid JSON, or lacks a required key.
    """
    root_p = Path(root or Path.cwd()).resolve()
    results = Path(results_dir)
    if not results.is_absolute():
        results = root_p / results

    def locate(_label: str, recorded: str) -> Path:
        return Path(recorded) if Path(recorded).is_absolute() else root_p / recorded

    return check_manifest(results / MANIFEST_NAME, locate, name_files=False)[0]
