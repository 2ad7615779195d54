"""HTML pieces of the report: escaped tables from DataFrames, dicts and small Datasets."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

__all__ = [
    "by_arm_wide",
    "dataset_tables",
    "flatten",
    "fmt",
    "io_table",
    "kv_table",
    "table",
    "text_list",
]


def fmt(v: Any) -> str:
    """A value as report text: ``—`` for None/NaN, yes/no, 4 significant digits."""
    if v is None:
        return "—"
    if isinstance(v, bool | np.bool_):
        return "yes" if v else "no"
    if isinstance(v, float | np.floating):
        if not np.isfinite(v):
            return "—"
        return f"{v:.4g}"
    return str(v)


def table(df: pd.DataFrame | None, *, table_id: str | None = None, index: bool = False) -> str:
    """HTML of a DataFrame (escaped, compact number format), or '' for None/empty."""
    if df is None or len(df) == 0:
        return ""
    return df.to_html(
        index=index,
        escape=True,
        na_rep="—",
        border=0,
        classes="data",
        table_id=table_id,
        formatters={c: fmt for c in df.columns if df[c].dtype == object or df[c].dtype.kind == "f"},
    )


def kv_table(items: Mapping[str, Any], *, table_id: str | None = None) -> str:
    """Two-column (item, value) table of a flat dict, or '' when empty."""
    if not items:
        return ""
    return table(
        pd.DataFrame({"item": list(items), "value": [fmt(v) for v in items.values()]}),
        table_id=table_id,
    )


def by_arm_wide(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One row per ``keys`` combination, one ``"estimate (low–high)"`` and ``n`` column per arm."""
    est = [
        "—" if not np.isfinite(e) else f"{e:.4g} ({lo:.4g}–{hi:.4g})"
        for e, lo, hi in zip(df["estimate"], df["ci_low"], df["ci_high"], strict=True)
    ]
    long = df.assign(value=est)
    wide = long.pivot_table(
        index=keys, columns="arm", values=["value", "n"], aggfunc="first", sort=False
    )
    arms = list(dict.fromkeys(df["arm"]))
    wide = wide.reindex(columns=[(v, a) for a in arms for v in ("n", "value")])
    wide.columns = [f"{a}: n" if v == "n" else f"{a}: estimate (CI)" for v, a in wide.columns]
    return wide.reset_index()


def flatten(d: Mapping[str, Any], prefix: str = "") -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a nested dict into dotted scalar items and tables (DataFrames / lists of dicts)."""
    scalars: dict[str, Any] = {}
    tables: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, pd.DataFrame):
            tables[key] = v
        elif isinstance(v, list) and v and all(isinstance(i, Mapping) for i in v):
            tables[key] = pd.DataFrame(v)
        elif (
            isinstance(v, Mapping)
            and v
            and all(isinstance(i, Mapping) for i in v.values())
            and all(not isinstance(x, Mapping) for i in v.values() for x in i.values())
        ):
            # {name: {column: scalar}}, e.g. per-endpoint verification results
            tables[key] = pd.DataFrame.from_dict(dict(v), orient="index")
        elif isinstance(v, Mapping):
            s, t = flatten(v, f"{key}.")
            scalars.update(s)
            tables.update(t)
        elif isinstance(v, list | tuple):
            scalars[key] = ", ".join(fmt(i) for i in v)
        else:
            scalars[key] = v
    return scalars, tables


def dataset_tables(ds: xr.Dataset, *, max_rows: int = 200) -> list[dict[str, str]]:
    """Tables of a small result Dataset (UQ, SA): variables grouped by their dims."""
    out = []
    groups: dict[tuple[str, ...], list[str]] = {}
    for name, var in ds.data_vars.items():
        groups.setdefault(tuple(var.dims), []).append(str(name))
    summary = []
    for dims, names in groups.items():
        size = int(np.prod([ds.sizes[d] for d in dims])) if dims else 1
        if len(dims) <= 3 and size <= max_rows:
            frame = (
                ds[names].to_dataframe().reset_index()
                if dims
                else pd.DataFrame({n: [ds[n].item()] for n in names})
            )
            caption = ", ".join(
                f"{n} [{ds[n].attrs['units']}]" if "units" in ds[n].attrs else n for n in names
            )
            out.append({"caption": f"{caption} by ({', '.join(dims)})", "html": table(frame)})
        else:
            for n in names:
                values = np.asarray(ds[n].values)
                finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
                summary.append(
                    {
                        "variable": n,
                        "dims": ", ".join(dims),
                        "shape": "×".join(str(ds.sizes[d]) for d in dims),
                        "units": ds[n].attrs.get("units", ""),
                        "min": finite.min() if finite.size else np.nan,
                        "max": finite.max() if finite.size else np.nan,
                    }
                )
    if summary:
        out.append({"caption": "Large variables (summary)", "html": table(pd.DataFrame(summary))})
    return out


def io_table(spec: Any) -> pd.DataFrame | None:
    """Model-card inputs/outputs (dict name -> attrs, or list of dicts) as a table."""
    if not spec:
        return None
    if isinstance(spec, Mapping):
        rows = [
            {"name": k, **(v if isinstance(v, Mapping) else {"description": v})}
            for k, v in spec.items()
        ]
    else:
        rows = [dict(v) if isinstance(v, Mapping) else {"name": str(v)} for v in spec]
    frame = pd.DataFrame(rows)
    if "unit" in frame and "units" not in frame:
        frame = frame.rename(columns={"unit": "units"})
    first = [c for c in ("name", "units", "description", "bounds") if c in frame]
    return frame[first + [c for c in frame.columns if c not in first]].map(
        lambda v: ", ".join(map(str, v)) if isinstance(v, list | tuple) else v
    )


def text_list(items: Any) -> list[str]:
    """A string, list of strings or list of dicts as a list of lines."""
    if not items:
        return []
    if isinstance(items, str):
        return [items]
    out = []
    for i in items:
        if isinstance(i, Mapping):
            out.append("; ".join(f"{k}: {v}" for k, v in i.items()))
        else:
            out.append(str(i))
    return out
