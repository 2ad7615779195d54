"""Compare two results folders of the same trial, value by value.

    python benchmarks/compare_results.py results/<trial> OTHER/results/<trial>

Used to show that a restructuring of the code left a trial's results unchanged: every zarr
store (each variable, exactly, NaN equal to NaN), every CSV (cell by cell) and every JSON
file (key by key) under the two folders. What is *expected* to differ between two runs is
left out and listed: wall-clock times and durations, absolute paths, the hashes of source
files and the manifest's record of the code and machine (the code changed, on purpose).

``--atol A``: floats (zarr, CSV, JSON) at most A apart count as equal, for a change that
reorders floating-point sums on purpose; the default 0 asks for identical values.

Exit status 0 when the results are identical, 1 otherwise (each difference printed).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

#: JSON keys whose values record when, where or with which code a run happened.
VOLATILE_KEYS = {
    "created",
    "started",
    "finished",
    "elapsed_s",
    "duration_s",
    "wall_s",
    "seconds",
    "timestamp",
    "recorded_at",
    "sha256",
    "git",
    "platform",
    "python",
    "packages",
    "hostname",
    "last_run",
    "throughput",
}
#: Folders that are caches or logs, not results.
SKIP_DIRS = {"logs", "benchmarks", "provenance", "uq_runs.zarr", "sa_runs.zarr", "runs"}
#: Files that only record the run itself (hashes of everything, including the code).
SKIP_FILES = {"manifest.json"}


def _json_diff(a, b, where: str, out: list[str], atol: float = 0.0) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key in VOLATILE_KEYS:
                continue
            if key not in a or key not in b:
                out.append(f"{where}.{key}: only in {'second' if key in b else 'first'}")
                continue
            _json_diff(a[key], b[key], f"{where}.{key}", out, atol)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{where}: {len(a)} vs {len(b)} items")
            return
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _json_diff(x, y, f"{where}[{i}]", out, atol)
    elif isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return
    elif isinstance(a, float) and isinstance(b, float) and abs(a - b) <= atol:
        return
    elif a != b:
        out.append(f"{where}: {a!r} != {b!r}")


def _store_groups(path: Path) -> list[str | None]:
    groups = [None]
    for meta in sorted(path.rglob("zarr.json")):
        rel = meta.parent.relative_to(path)
        if rel.parts and json.loads(meta.read_text()).get("node_type") == "group":
            groups.append(str(rel))
    return groups


def _zarr_diff(a: Path, b: Path, out: list[str], atol: float = 0.0) -> int:
    n = 0
    for group in _store_groups(a):
        try:
            da = xr.open_zarr(a, group=group, consolidated=False)
            db = xr.open_zarr(b, group=group, consolidated=False)
        except (KeyError, FileNotFoundError, ValueError) as err:
            out.append(f"{a.name}/{group}: cannot open in both ({err})")
            continue
        names = sorted(set(da.variables) | set(db.variables))
        for name in names:
            if name not in da.variables or name not in db.variables:
                out.append(f"{a.name}/{group or ''}:{name}: only in one store")
                continue
            x, y = np.asarray(da[name].values), np.asarray(db[name].values)
            n += x.size
            if x.shape != y.shape:
                out.append(f"{a.name}/{group or ''}:{name}: shape {x.shape} vs {y.shape}")
            elif x.dtype.kind == "f":
                if not np.allclose(x, y, rtol=0.0, atol=atol, equal_nan=True):
                    diff = np.nanmax(np.abs(x - y))
                    out.append(f"{a.name}/{group or ''}:{name}: max |diff| {diff:.3g}")
            elif not np.array_equal(x, y):
                out.append(f"{a.name}/{group or ''}:{name}: values differ")
    return n


def compare(first: Path, second: Path, atol: float = 0.0) -> tuple[list[str], dict[str, int]]:
    """Differences between two results folders (floats farther apart than ``atol``), and
    counts of what was compared."""
    out: list[str] = []
    counts = {"zarr_values": 0, "csv_cells": 0, "json_files": 0, "files": 0}
    for path in sorted(first.rglob("*")):
        rel = path.relative_to(first)
        if set(rel.parts) & SKIP_DIRS or path.name in SKIP_FILES:
            continue
        other = second / rel
        if path.suffix == ".zarr" and path.is_dir():
            if not other.is_dir():
                out.append(f"{rel}: missing in second")
                continue
            counts["zarr_values"] += _zarr_diff(path, other, out, atol)
            counts["files"] += 1
        elif ".zarr" in str(rel) or not path.is_file():
            continue
        elif not other.is_file():
            out.append(f"{rel}: missing in second")
        elif path.suffix == ".csv":
            counts["files"] += 1
            try:
                a, b = pd.read_csv(path), pd.read_csv(other)
            except pd.errors.EmptyDataError:
                if path.read_bytes() != other.read_bytes():
                    out.append(f"{rel}: differs")
                continue
            counts["csv_cells"] += a.size
            try:
                pd.testing.assert_frame_equal(a, b, check_exact=not atol, rtol=0.0, atol=atol)
            except AssertionError as err:
                out.append(f"{rel}: {str(err).splitlines()[0]} {str(err).splitlines()[-1]}")
        elif path.suffix == ".json":
            counts["files"] += 1
            counts["json_files"] += 1
            _json_diff(
                json.loads(path.read_text()), json.loads(other.read_text()), str(rel), out, atol
            )
    for path in sorted(second.rglob("*")):
        rel = path.relative_to(second)
        if set(rel.parts) & SKIP_DIRS or ".zarr" in str(rel.parent):
            continue
        if (path.is_file() or path.suffix == ".zarr") and not (first / rel).exists():
            out.append(f"{rel}: only in second")
    return out, counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument(
        "--atol",
        type=float,
        default=0.0,
        help="floats this close count as equal (default 0: exactly equal)",
    )
    args = parser.parse_args(argv)
    differences, counts = compare(args.first, args.second, args.atol)
    print(
        f"compared {counts['files']} files: {counts['zarr_values']} zarr values, "
        f"{counts['csv_cells']} CSV cells, {counts['json_files']} JSON files"
    )
    print(f"left out as run records: keys {sorted(VOLATILE_KEYS)}; {sorted(SKIP_DIRS)}")
    for d in differences:
        print(f"DIFF {d}")
    same = "identical" if not args.atol else f"identical within {args.atol:g}"
    print(same if not differences else f"{len(differences)} difference(s)")
    return 0 if not differences else 1


if __name__ == "__main__":
    sys.exit(main())
