"""Clinical comparators: published figures a virtual trial is calibrated or validated against.

A comparator file is a CSV (``#`` comment lines allowed) with one published figure per row and
a citation on every row. Each row has a **role**:

* ``calibration`` — used to fit or choose model numbers (the ``calibrate`` stage);
* ``validation`` — never used to fit anything; chosen and committed before the model is run
  on it. Validation metrics and the output-comparison evidence use these rows only.

A row selects the virtual patients it is compared with by ``arm`` (or ``pooled``), by an
optional ``size_mm`` (a device size, compared with the outcome variable the caller names as
``size_variable``, see :func:`credibility.validation.validate`) and by an optional ``where``
clause over cohort and outcome variables (``x<=50 & sex==0``). Its ``timepoint_days`` says
when the figure was measured; the trial compares the model's prediction *at that time point*
(or excludes the row with the reason shown).

Columns
-------
Required on every row: ``id, study, role, quantity, statistic, arm, value, unit,
timepoint_days, citation``. Optional: ``category`` (integer class code(s) counted by a
proportion, ``2`` or ``1|2``), ``threshold`` (a proportion of a continuous quantity:
``>=20``), ``where``, ``device``, ``size_mm``, ``sd``, ``ci_low``, ``ci_high``, ``n``,
``timepoint`` (as published, free text), ``population``, ``method`` (how it was measured:
core-lab TTE, site echo, catheter …).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import CredibilityError

__all__ = [
    "POOLED_ARM",
    "ROLES",
    "STATISTICS",
    "ComparatorError",
    "event_of",
    "event_values",
    "load_comparators",
    "load_populations",
    "parse_where",
    "rows_with_role",
    "select",
    "where_variables",
]

#: Columns every comparator file must have (a non-empty value on every row).
REQUIRED_COLUMNS = (
    "id",
    "study",
    "role",
    "quantity",
    "statistic",
    "arm",
    "value",
    "unit",
    "timepoint_days",
    "citation",
)
#: Optional columns; missing ones are added as empty.
OPTIONAL_COLUMNS = (
    "category",
    "threshold",
    "where",
    "device",
    "size_mm",
    "sd",
    "ci_low",
    "ci_high",
    "n",
    "timepoint",
    "population",
    "method",
)
#: Allowed values of the ``statistic`` column (``sd``: the published between-patient SD).
STATISTICS = ("mean", "median", "sd", "proportion")
#: Allowed values of the ``role`` column.
ROLES = ("calibration", "validation")
#: Allowed units of a proportion (values in percent are converted to fractions on load).
PROPORTION_UNITS = ("%", "fraction")
#: ``arm`` value that pools every arm of the outcomes (a 1:1 device mix in a crossover trial).
POOLED_ARM = "pooled"

_OPS = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
    "=": operator.eq,
}
_CLAUSE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|==|!=|<|>|=)\s*(-?[0-9.eE+-]+)\s*$")
_THRESHOLD = re.compile(r"^\s*(<=|>=|<|>)\s*(-?[0-9.eE+-]+)\s*$")


class ComparatorError(CredibilityError):
    """A comparator or population file is malformed; the message names file, row and column."""


def _data_lines(path: Path) -> np.ndarray:
    """1-based line numbers of the data rows of a CSV whose comment lines start with '#'."""
    lines = path.read_text(encoding="utf-8").splitlines()
    content = [i + 1 for i, t in enumerate(lines) if t.strip() and not t.lstrip().startswith("#")]
    return np.asarray(content[1:], dtype=int)


def parse_where(text: str) -> list[list[tuple[str, str, float]]]:
    """Alternatives of ``(variable, operator, value)`` clauses of a ``where`` selection.

    Parameters
    ----------
    text : str
        ``"<variable> <op> <number>"`` clauses joined by ``&`` (all must hold); groups of
        them joined by ``|`` (any group may hold; ``&`` binds tighter). ``op`` is one of
        ``<=, >=, ==, !=, <, >, =``. Empty selects everything.

    Returns
    -------
    list of list of tuple
        One list of clauses per alternative.

    Raises
    ------
    ComparatorError
        Naming the clause that does not parse.

    Examples
    --------
    >>> parse_where("x<=50 & sex==0")
    [[('x', '<=', 50.0), ('sex', '==', 0.0)]]
    >>> parse_where("length_mm<72 | area_mm2<400")
    [[('length_mm', '<', 72.0)], [('area_mm2', '<', 400.0)]]
    """
    groups = []
    for alternative in filter(None, (a.strip() for a in str(text).split("|"))):
        clauses = []
        for part in filter(None, (p.strip() for p in alternative.split("&"))):
            m = _CLAUSE.match(part)
            if not m:
                raise ComparatorError(
                    f"where clause {part!r} is not '<variable> <op> <number>' with op in "
                    f"{list(_OPS)}"
                )
            clauses.append((m.group(1), m.group(2), float(m.group(3))))
        groups.append(clauses)
    return groups


def where_variables(text: str) -> set[str]:
    """The variables a ``where`` selection names."""
    return {var for group in parse_where(text) for var, _, _ in group}


def select(where: str, variables: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    """Boolean mask of the patients a ``where`` selection keeps.

    Parameters
    ----------
    where : str
        See :func:`parse_where`.
    variables : mapping of str to ndarray, shape (n,)
        Cohort and outcome variables by name.
    n : int
        Number of patients.

    Raises
    ------
    KeyError
        If a clause names a variable not in ``variables`` (the message lists them).
    """
    groups = parse_where(where)
    if not groups:
        return np.ones(n, dtype=bool)
    mask = np.zeros(n, dtype=bool)
    for group in groups:
        keep = np.ones(n, dtype=bool)
        for var, op, value in group:
            if var not in variables:
                raise KeyError(
                    f"where clause names {var!r}; available variables: {sorted(variables)}"
                )
            keep &= _OPS[op](np.asarray(variables[var], dtype=float), value)
        mask |= keep
    return mask


def event_of(row: Mapping[str, Any]):
    """The binary event a proportion row counts, as a function of the values.

    ``category`` ``"2"`` or ``"1|2"`` counts those integer codes; ``threshold`` ``">=20"``
    counts values at or above 20.
    """
    threshold = str(row.get("threshold") or "").strip()
    if threshold:
        m = _THRESHOLD.match(threshold)
        op, value = _OPS[m.group(1)], float(m.group(2))
        return lambda x: op(x, value)
    codes = [float(c) for c in str(row["category"]).split("|")]
    return lambda x: np.isin(x, codes)


def event_values(row: Mapping[str, Any], x: np.ndarray) -> np.ndarray:
    """The event indicator (1.0 / 0.0) of a proportion row for each value, NaN where the value
    is missing (non-finite, or a negative class code: a class output's fill value)."""
    x = np.asarray(x, dtype=float)
    valid = np.isfinite(x) & (x >= 0 if row.get("category") else True)
    return np.where(valid, np.asarray(event_of(row)(x), dtype=float), np.nan)


def _fail(path: Path, line: int, rid: str, message: str) -> ComparatorError:
    return ComparatorError(f"{path}: row {line} (id={rid or '?'}): {message}")


def load_comparators(path: str | Path) -> pd.DataFrame:
    """Read a comparator CSV file and check it.

    Parameters
    ----------
    path : str or Path
        CSV with the columns described in the module docstring.

    Returns
    -------
    pandas.DataFrame
        One row per comparator; numbers as floats; proportions (and their ``sd``/``ci``)
        converted to fractions with ``unit = "fraction"``; ``source_row`` holds the 1-based
        line number in the file.

    Raises
    ------
    ComparatorError
        Naming the file, the line and the column, when a required column is missing, a
        required value (notably the citation) is empty, an ``id`` repeats, a number does not
        parse, ``statistic``, ``role`` or a proportion unit is not an allowed value, a
        proportion has neither ``category`` nor ``threshold``, or a ``where`` clause does not
        parse.
    """
    path = Path(path)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, comment="#")
    except (OSError, pd.errors.ParserError) as exc:
        raise ComparatorError(f"{path}: cannot read comparator CSV: {exc}") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    if missing:
        raise ComparatorError(
            f"{path}: missing required column(s) {missing}; required: {list(REQUIRED_COLUMNS)}"
        )
    unknown = sorted(set(raw.columns) - set(REQUIRED_COLUMNS) - set(OPTIONAL_COLUMNS))
    if unknown:
        raise ComparatorError(
            f"{path}: unknown column(s) {unknown}; allowed: "
            f"{list(REQUIRED_COLUMNS) + list(OPTIONAL_COLUMNS)}"
        )
    for col in OPTIONAL_COLUMNS:
        if col not in raw.columns:
            raw[col] = ""
    raw = raw.map(lambda v: v.strip() if isinstance(v, str) else v)
    lines = _data_lines(path)
    raw["source_row"] = lines
    records = raw.to_dict("records")
    seen: set[str] = set()
    for rec, line in zip(records, lines, strict=True):
        rid = rec["id"]
        for col in REQUIRED_COLUMNS:
            if rec[col] == "":
                raise _fail(path, line, rid, f"column '{col}' is empty; every row needs {col}")
        if rid in seen:
            raise _fail(path, line, rid, f"duplicate id '{rid}'")
        seen.add(rid)
        for col, allowed in (("statistic", STATISTICS), ("role", ROLES)):
            if rec[col] not in allowed:
                raise _fail(
                    path, line, rid, f"column '{col}' is '{rec[col]}'; allowed: {list(allowed)}"
                )
        if rec["statistic"] == "proportion":
            if rec["unit"] not in PROPORTION_UNITS:
                raise _fail(
                    path,
                    line,
                    rid,
                    f"proportion unit is '{rec['unit']}'; allowed: {list(PROPORTION_UNITS)}",
                )
            if not rec["category"] and not rec["threshold"]:
                raise _fail(
                    path,
                    line,
                    rid,
                    "column 'category' is empty and so is 'threshold'; a proportion needs "
                    "the integer code(s) it counts (e.g. 2, or 1|2) or a threshold (e.g. >=20)",
                )
        if rec["threshold"] and not _THRESHOLD.match(rec["threshold"]):
            raise _fail(
                path,
                line,
                rid,
                f"column 'threshold' is '{rec['threshold']}'; allowed: '>=20'-"
                "style, one of <=, >=, <, > and a number",
            )
        if rec["category"]:
            try:
                [float(c) for c in rec["category"].split("|")]
            except ValueError:
                raise _fail(
                    path,
                    line,
                    rid,
                    f"column 'category' is '{rec['category']}'; allowed: "
                    "integer codes separated by |",
                ) from None
        try:
            parse_where(rec["where"])
        except ComparatorError as exc:
            raise _fail(path, line, rid, f"column 'where': {exc}") from None
    out = raw.copy()
    for col in ("value", "size_mm", "sd", "ci_low", "ci_high", "n", "timepoint_days"):
        num = pd.to_numeric(raw[col].replace("", np.nan), errors="coerce")
        bad = num.isna() & (raw[col] != "")
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise _fail(
                path,
                lines[i],
                raw["id"].iat[i],
                f"column '{col}' is '{raw[col].iat[i]}', not a number",
            )
        out[col] = num.astype(float)
    is_prop = out["statistic"] == "proportion"
    pct = is_prop & (out["unit"] == "%")
    for col in ("value", "sd", "ci_low", "ci_high"):
        out.loc[pct, col] = out.loc[pct, col] / 100.0
    out.loc[pct, "unit"] = "fraction"
    bad_frac = is_prop & ~out["value"].between(0.0, 1.0)
    if bad_frac.any():
        i = int(np.flatnonzero(bad_frac.to_numpy())[0])
        raise _fail(path, lines[i], out["id"].iat[i], "proportion value outside [0, 1]")
    out.attrs["source"] = str(path)
    return out.reset_index(drop=True)


def rows_with_role(comparators: pd.DataFrame, role: str) -> pd.DataFrame:
    """The rows of one role (``calibration`` or ``validation``).

    Raises
    ------
    ComparatorError
        If ``role`` is not an allowed value or the table has no ``role`` column.
    """
    if role not in ROLES:
        raise ComparatorError(f"role is {role!r}; allowed: {list(ROLES)}")
    if "role" not in comparators:
        raise ComparatorError(
            "comparator table has no 'role' column; load it with load_comparators"
        )
    out = comparators[comparators["role"] == role].reset_index(drop=True)
    out.attrs = dict(comparators.attrs)
    return out


def load_populations(path: str | Path) -> dict[str, dict[str, dict[str, float]]]:
    """Read comparator-population characteristics for :func:`credibility.applicability.applicability`.

    Parameters
    ----------
    path : str or Path
        CSV with columns ``population, variable, citation`` (required) and any of ``mean``,
        ``sd``, ``min``, ``max``, ``proportion`` (numbers), ``where`` (optional restriction
        to a subset of patients, a selection as in :func:`parse_where`, e.g. ``sex=0``).

    Returns
    -------
    dict
        ``{population: {key: {"variable", "mean", "sd", "min", "max", "proportion", "where",
        "citation"}}}``; ``key`` is the variable name, suffixed by ``[where]`` if restricted.

    Raises
    ------
    ComparatorError
        Naming file, line and column for a missing column, empty citation, unparsable number,
        a ``where`` that does not parse or a row without any of mean / min / max / proportion.
    """
    path = Path(path)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, comment="#")
    except (OSError, pd.errors.ParserError) as exc:
        raise ComparatorError(f"{path}: cannot read population CSV: {exc}") from exc
    required = ("population", "variable", "citation")
    numeric = ("mean", "sd", "min", "max", "proportion")
    missing = [c for c in required if c not in raw.columns]
    if missing:
        raise ComparatorError(f"{path}: missing required column(s) {missing}")
    result: dict[str, dict[str, dict[str, Any]]] = {}
    lines = _data_lines(path)
    for line, row in zip(lines, raw.to_dict("records"), strict=True):
        for col in required:
            if str(row[col]).strip() == "":
                raise ComparatorError(f"{path}: row {line}: column '{col}' is empty")
        entry: dict[str, Any] = {"variable": row["variable"].strip()}
        for col in numeric:
            text = str(row.get(col, "")).strip()
            try:
                entry[col] = float(text) if text else np.nan
            except ValueError as exc:
                raise ComparatorError(
                    f"{path}: row {line}: column '{col}' is '{text}', not a number"
                ) from exc
        if all(np.isnan(entry[c]) for c in ("mean", "min", "max", "proportion")):
            raise ComparatorError(
                f"{path}: row {line}: give at least one of mean, min, max, proportion"
            )
        entry["where"] = str(row.get("where", "")).strip()
        try:
            parse_where(entry["where"])
        except ComparatorError as exc:
            raise ComparatorError(f"{path}: row {line}: column 'where': {exc}") from None
        entry["citation"] = row["citation"].strip()
        key = entry["variable"] + (f"[{entry['where']}]" if entry["where"] else "")
        result.setdefault(row["population"].strip(), {})[key] = entry
    return result
