"""The one numpy → JSON conversion of isct: stage summaries, store attributes, hashes.

zarr attributes, the stages' JSON summaries, the engine's canonical config hash and the
``isct verify`` report all hold values that come out of numpy (scalars, arrays, NaN) and
paths. :func:`plain` turns them into JSON values; :func:`write_json` and :func:`canonical`
are its two uses.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["canonical", "plain", "read_json", "write_json"]


def plain(value: Any, *, nan: Any = math.nan) -> Any:
    """``value`` as plain JSON types: numpy scalars and arrays, mappings, tuples, paths.

    Parameters
    ----------
    value : any
        Nested mappings / sequences of numbers, strings, numpy values and paths.
    nan : any, default NaN
        What a float NaN becomes: kept (Python's ``json`` writes ``NaN``), or e.g. ``None``
        for strict JSON.

    Raises
    ------
    TypeError
        For a value with no JSON form (the message shows it).
    """
    if isinstance(value, Mapping):
        return {str(k): plain(v, nan=nan) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return [plain(v, nan=nan) for v in items]
    if isinstance(value, np.ndarray):
        return plain(value.tolist(), nan=nan)
    if isinstance(value, np.generic):
        return plain(value.item(), nan=nan)
    if isinstance(value, os.PathLike):
        return str(value)
    if isinstance(value, float) and math.isnan(value):
        return nan if nan is not math.nan else value
    if value is None or isinstance(value, str | bool | int | float):
        return value
    raise TypeError(f"not JSON serialisable: {value!r}")


def canonical(value: Any) -> str:
    """Compact JSON with sorted keys: the same text for equal values (for hashing)."""
    return json.dumps(plain(value), sort_keys=True)


def write_json(path: str | os.PathLike, value: Any) -> Path:
    """Write ``value`` (see :func:`plain`) as indented JSON with sorted keys; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(plain(value), indent=2, sort_keys=True) + "\n")
    return path


def read_json(path: str | os.PathLike, what: str, error: type[Exception]) -> Any:
    """The JSON document at ``path``; an unreadable file or invalid JSON raises
    ``error("<path>: cannot read <what>: ...")`` or ``error("<path>: not valid JSON: ...")``."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise error(f"{path}: not valid JSON: {exc}") from exc
