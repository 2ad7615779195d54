"""``isct info``: a human summary of any store or file the workflow wrote."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from .errors import IsctError

__all__ = ["summarise"]

_ATTRS_SHOWN = ("title", "spec_name", "model", "model_version", "batch_size", "seed", "method")


def _describe_store(path: Path) -> list[str]:
    """A store, and each of its groups (the SA store keeps one group per analysis)."""
    import zarr

    lines = _describe_dataset(path)
    for name, _ in sorted(zarr.open_group(path, mode="r").groups()):
        lines.extend("  " + line for line in _describe_dataset(path, group=name))
    return lines


def _describe_dataset(path: Path, group: str | None = None) -> list[str]:
    ds = xr.open_zarr(path, group=group, consolidated=False)
    if group is not None:
        lines = [f"group {group}"]
    else:
        lines = [f"{path}  (zarr store)"]
    if not ds.variables and group is None:
        return lines
    lines.append("  dims: " + ", ".join(f"{k}={v}" for k, v in ds.sizes.items()))
    for key in _ATTRS_SHOWN:
        if key in ds.attrs:
            lines.append(f"  {key}: {ds.attrs[key]}")
    if "arm" in ds.coords:
        lines.append("  arms: " + ", ".join(map(str, ds["arm"].values)))
    if "status" in ds and "arm" in ds["status"].dims:
        meanings = ["not_run", *str(ds["status"].attrs.get("flag_meanings", "")).split()]
        codes = [-1, *ds["status"].attrs.get("flag_values", [])]
        status = ds["status"].values
        for i, arm in enumerate(ds["arm"].values):
            counts = {m: int((status[i] == c).sum()) for c, m in zip(codes, meanings, strict=False)}
            shown = ", ".join(f"{m} {n}" for m, n in counts.items() if n)
            lines.append(f"  status[{arm}]: {shown}")
    if "batch_done" in ds:
        done = ds["batch_done"].values
        lines.append(f"  batches done: {int(done.sum())} of {done.size}")
    if "isct_last_run" in ds.attrs:
        lines.append(f"  last run: {ds.attrs['isct_last_run']}")
    lines.append("  variables:")
    for name, var in ds.data_vars.items():
        if name == "batch_done":
            continue
        units = var.attrs.get("units", "")
        long_name = var.attrs.get("long_name", "")
        summary = ""
        if var.size and np.issubdtype(var.dtype, np.floating) and var.size <= 50_000_000:
            values = var.values
            finite = values[np.isfinite(values)]
            if finite.size:
                summary = (
                    f"  mean {finite.mean():.4g}, range [{finite.min():.4g}, {finite.max():.4g}]"
                )
        dims = ",".join(var.dims)
        lines.append(f"    {name} ({dims}) [{units}] {long_name}{summary}")
    return lines


def summarise(path: str | os.PathLike) -> str:
    """Summarise a zarr store, a JSON/CSV file, or every store in a results folder.

    Raises
    ------
    IsctError
        If the path does not exist or is not something the workflow writes.
    """
    path = Path(path)
    if not path.exists():
        raise IsctError(f"{path} does not exist")
    # Snakemake marks directory() outputs with a timestamp file that zarr rightly ignores
    warnings.filterwarnings("ignore", message="Object at .snakemake_timestamp")
    if path.is_dir() and (path / "zarr.json").exists():
        return "\n".join(_describe_store(path))
    if path.is_dir():
        parts = [f"{path}  (results folder)"]
        for child in sorted(path.iterdir()):
            if child.is_dir() and (child / "zarr.json").exists():
                parts.extend(_describe_store(child))
            elif child.suffix in (".json", ".csv"):
                parts.append(f"{child}  ({child.stat().st_size} bytes)")
        if len(parts) == 1:
            raise IsctError(f"{path} holds no zarr store or result file that isct writes")
        return "\n".join(parts)
    if path.suffix == ".json":
        return f"{path}\n" + json.dumps(json.loads(path.read_text()), indent=2)[:20_000]
    if path.suffix == ".csv":
        import pandas as pd

        return f"{path}\n" + pd.read_csv(path).to_string(max_rows=60)
    raise IsctError(f"{path}: not a zarr store, results folder, JSON or CSV file")
