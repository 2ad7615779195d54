"""Target tables: a published baseline table ("Table 1") as figures to match a cohort to.

A target table is YAML (or a dict) validated against ``cohorts/targets.schema.yaml``::

    name: example_table1
    citation: "Author A et al. Journal 2020;1:1-10, Table 1"
    n: 500                       # patients the table describes
    role: validation             # or calibration (optional)
    targets:
      - {variable: age_yr, mean: 80.1, sd: 6.2, units: yr}
      - {variable: sex, proportions: {female: 0.46, male: 0.54}}
      - {variable: weight_kg, median: 78, iqr: [68, 90]}
      - {variable: annulus_area_mm2, subgroup: "sex == 'female'", n: 230, mean: 405, sd: 75}
      - {label: obesity, where: "bmi_kg_m2 >= 30", proportion: 0.31}
      - {variable: height_cm, with: weight_kg, correlation: 0.45}

Each row is exactly one of: ``mean`` + ``sd``; ``median`` + ``iqr: [q1, q3]``;
``proportions`` of a categorical ``variable`` (categories named as in its
``flag_meanings``); ``proportion`` of a yes/no ``variable`` or of the patients meeting
``where``; ``correlation`` of ``variable`` ``with`` another (``kind`` pearson or spearman).
``subgroup`` (an expression of the cohort expression language, e.g. ``"sex == 'female'"``)
restricts a row to the patients for whom it holds. ``n`` and ``citation`` default to the
table's. A row becomes one :class:`TargetStatistic` per figure (mean and SD, the three
quartiles, each category), each with its sampling interval (:mod:`cohorts.intervals`).

Rounding: published percentages are rounded, so proportions of one variable (within one
subgroup) may sum to at most ``1 + 0.005 k`` for ``k`` categories given (half a percentage
point each); when every category is given their sum must be within that of 1, and matching
uses them normalised to sum to 1.
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
import yaml

from . import intervals
from ._schema import load_document
from .errors import FileKeyError
from .expr import ExpressionError, compile_expression

__all__ = [
    "ROW_KINDS",
    "TargetError",
    "TargetStatistic",
    "TargetTable",
    "load_targets",
    "proportion_groups",
    "targets_schema",
]

#: The figure a row gives (exactly one per row).
ROW_KINDS = ("mean", "median", "proportions", "proportion", "correlation")
_COMPANIONS = {  # kind -> (required keys, forbidden keys besides other kinds)
    "mean": ({"variable"}, {"iqr", "where", "with", "kind"}),
    "median": ({"variable", "iqr"}, {"sd", "where", "with", "kind"}),
    "proportions": ({"variable"}, {"sd", "iqr", "where", "with", "kind"}),
    "proportion": (set(), {"sd", "iqr", "with", "kind"}),
    "correlation": ({"variable", "with"}, {"sd", "iqr", "where"}),
}
#: How the interval of a mean published without its SD is computed (at use, per cohort).
PLUG_IN_INTERVAL = "mean +/- z s/sqrt(n), s the cohort's SD (the source reports no SD)"
#: Allowed excess of a variable's proportions over 1, per category given (rounding).
ROUNDING_PER_CATEGORY = 0.005


class TargetError(FileKeyError):
    """A target table is invalid, or does not fit the cohort it is checked against.

    ``source_file``, ``key`` (e.g. ``targets[2].proportions``) and ``detail`` as
    :class:`cohorts.errors.FileKeyError`.
    """


@dataclass(frozen=True)
class TargetStatistic:
    """One published figure and its sampling interval.

    Attributes
    ----------
    row : int
        Index of the row in the table's ``targets`` list (``key`` is ``"targets[row]"``).
    label : str
        Readable name, e.g. ``"age_yr mean"``, ``"sex = female | ..."``.
    statistic : {"mean", "sd", "q25", "median", "q75", "proportion", "correlation"}
    variable : str or None
        Cohort variable (None for a ``where`` proportion).
    value : float
        The published figure (proportions as fractions), in the variable's units.
    ci_low, ci_high : float
        Its sampling interval (:mod:`cohorts.intervals`).
    n : int
        Patients behind the figure.
    citation : str
    subgroup, category, where, with_, kind, units : str or None
        As in the row (``category`` for the proportions of a categorical).
    mean, sd : float or None
        The row's published mean and SD (mean + sd rows).
    quartiles : tuple or None
        The row's ``(q1, median, q3)`` (median + iqr rows).
    interval : str
        How the interval was computed.
    """

    row: int
    label: str
    statistic: str
    variable: str | None
    value: float
    ci_low: float
    ci_high: float
    n: int
    citation: str
    interval: str
    subgroup: str | None = None
    category: str | None = None
    where: str | None = None
    with_: str | None = None
    kind: str = "pearson"
    units: str | None = None
    mean: float | None = None
    sd: float | None = None
    quartiles: tuple[float, float, float] | None = None

    @property
    def key(self) -> str:
        return f"targets[{self.row}]"

    @property
    def level(self) -> float | None:
        """Probability level of a quantile statistic."""
        return {"q25": 0.25, "median": 0.5, "q75": 0.75}.get(self.statistic)


@dataclass(frozen=True)
class TargetTable:
    """A validated target table (build with :func:`load_targets`).

    Attributes
    ----------
    name, title, citation, role, population : str
    n : int
        Sample size of the source.
    confidence : float
        Confidence level of the sampling intervals.
    source_file : str
    sha256 : str
        Hash of the canonical JSON of the table.
    statistics : tuple of TargetStatistic
        One per published figure, in row order.
    raw : dict
        The table as loaded.
    """

    name: str
    title: str
    citation: str
    n: int
    role: str | None
    population: str
    confidence: float
    source_file: str
    sha256: str
    statistics: tuple[TargetStatistic, ...]
    raw: dict[str, Any] = field(repr=False)

    @property
    def variables(self) -> list[str]:
        """Cohort variables the rows name (``variable`` and ``with``), sorted."""
        names = {s.variable for s in self.statistics} | {s.with_ for s in self.statistics}
        return sorted(n for n in names if n)

    def error(self, key: str, detail: str) -> TargetError:
        return TargetError(self.source_file, key, detail)

    def check(self, ds: xr.Dataset) -> None:
        """Check the table against a cohort.

        Raises
        ------
        TargetError
            A variable the cohort does not have (the message lists those it has), a category
            not in the variable's ``flag_meanings``, a mean/median/correlation of a
            categorical, a proportion of a variable that is not yes/no, units that differ
            from the variable's, an expression naming unknown variables, proportions of all
            categories not summing to 1, an empty subgroup or non-finite values.
        """
        from .evaluate import bind

        bind(self, ds)

    def resolved(self, ds: xr.Dataset) -> TargetTable:
        """This table with the intervals of means published without an SD filled in.

        Such a mean's interval is ``mean ± z·s/√n`` with ``s`` the (sampling-weighted) SD of
        the variable in ``ds`` — the cohort being matched — as a plug-in estimate of the
        population SD. A table without such rows is returned as it is.
        """
        if not any(s.interval == PLUG_IN_INTERVAL for s in self.statistics):
            return self
        weights = (
            np.asarray(ds["sampling_weight"].values, dtype=float)
            if "sampling_weight" in ds
            else None
        )
        stats = []
        for s in self.statistics:
            if s.interval == PLUG_IN_INTERVAL:
                if s.variable not in ds:
                    raise self.error(
                        s.key, f"variable {s.variable!r} not in the cohort; available: "
                        f"{sorted(map(str, ds.data_vars))}"
                    )  # fmt: skip
                x = np.asarray(ds[s.variable].values, dtype=float)
                ok = np.isfinite(x)
                w = np.ones(ok.sum()) if weights is None else weights[ok]
                mean = np.average(x[ok], weights=w)
                sd = float(np.sqrt(np.average((x[ok] - mean) ** 2, weights=w)))
                lo, hi = intervals.mean_interval(s.value, sd, s.n, self.confidence)
                s = replace(s, ci_low=lo, ci_high=hi, sd=sd)
            stats.append(s)
        return replace(self, statistics=tuple(stats))

    def to_frame(self) -> pd.DataFrame:
        """The statistics as a table (one row per figure)."""
        cols = ["row", "label", "statistic", "variable", "subgroup", "value", "ci_low"]
        cols += ["ci_high", "n", "units", "citation", "interval"]
        return pd.DataFrame([{c: getattr(s, c) for c in cols} for s in self.statistics])


@cache
def targets_schema() -> dict[str, Any]:
    """The target-table JSON Schema (``cohorts/targets.schema.yaml``)."""
    text = resources.files("cohorts").joinpath("targets.schema.yaml").read_text("utf-8")
    return yaml.safe_load(text)


def load_targets(
    path: str | Path | Mapping[str, Any] | TargetTable, *, source_file: str | None = None
) -> TargetTable:
    """Load and validate a target table.

    Parameters
    ----------
    path : str, Path, mapping or TargetTable
        A YAML file, or the table as a dict (a TargetTable is returned unchanged).
    source_file : str, optional
        Label naming the table in messages (default: the path, or ``"<dict>"``).

    Returns
    -------
    TargetTable

    Raises
    ------
    TargetError
        Unknown keys (the message lists the allowed ones), numbers of the wrong type or out
        of range, a row with none or several of the figures in :data:`ROW_KINDS` or without
        its companions (``mean`` needs ``sd``, ``median`` needs ``iqr``...), quartiles out
        of order, proportions of one variable summing to more than 1 (beyond rounding), a
        row ``n`` above the table's, a repeated figure, a malformed expression. Variables
        and categories are checked against a cohort by :meth:`TargetTable.check`.

    Examples
    --------
    >>> table = load_targets({"name": "t", "citation": "example", "n": 100,
    ...     "targets": [{"variable": "age_yr", "mean": 80.0, "sd": 6.0}]})
    >>> [(s.statistic, round(s.ci_low, 2), round(s.ci_high, 2)) for s in table.statistics]
    [('mean', 78.82, 81.18), ('sd', 5.27, 6.97)]
    """
    if isinstance(path, TargetTable):
        return path
    raw, label = load_document(
        path,
        source_file,
        targets_schema(),
        TargetError,
        "a target table",
        "name, citation, n, targets",
    )
    conf = float(raw.get("confidence", 0.95))
    stats: list[TargetStatistic] = []
    for i, row in enumerate(raw["targets"]):
        stats.extend(_row_statistics(row, i, raw, conf, label))
    _check_duplicates(stats, label)
    _check_proportion_sums(stats, label)
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":")).encode()
    return TargetTable(
        name=raw["name"],
        title=raw.get("title", raw["name"]),
        citation=_text(raw["citation"]),
        n=int(raw["n"]),
        role=raw.get("role"),
        population=_text(raw.get("population", "")),
        confidence=conf,
        source_file=label,
        sha256=hashlib.sha256(canonical).hexdigest(),
        statistics=tuple(stats),
        raw=raw,
    )


def _text(value: str) -> str:
    return " ".join(str(value).split())


def _check_expression(text: str, label: str, key: str) -> None:
    """Syntax and allowed constructs; variable names are checked against a cohort later."""
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        tree = None
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} if tree else set()
    labels = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)] if tree else []
    labels = [v for v in labels if isinstance(v, str)]
    try:
        compile_expression(text, names, where=key, categories=dict.fromkeys(names, labels))
    except ExpressionError as exc:
        raise TargetError(label, key, str(exc).split(": ", 1)[1]) from None


def _row_statistics(row, i, raw, conf, label) -> list[TargetStatistic]:
    key = f"targets[{i}]"
    kinds = [k for k in ROW_KINDS if k in row]
    if len(kinds) != 1:
        found = f"{kinds}" if kinds else "none"
        raise TargetError(
            label, key, f"a row gives exactly one of {list(ROW_KINDS)}; this one gives {found}"
        )
    kind = kinds[0]
    required, forbidden = _COMPANIONS[kind]
    missing = sorted(required - set(row))
    if missing:
        raise TargetError(label, key, f"a {kind!r} row needs {missing}")
    extra = sorted(forbidden & set(row))
    if extra:
        raise TargetError(label, f"{key}.{extra[0]}", f"not allowed in a {kind!r} row")
    if kind == "proportion" and ("variable" in row) == ("where" in row):
        raise TargetError(
            label,
            key,
            "a 'proportion' row names either a yes/no 'variable' or a condition 'where', "
            "not both or neither",
        )
    n = int(row.get("n", raw["n"]))
    if n > raw["n"]:
        raise TargetError(label, f"{key}.n", f"{n} exceeds the table's n ({raw['n']})")
    for expr_key in ("subgroup", "where"):
        if expr_key in row:
            _check_expression(row[expr_key], label, f"{key}.{expr_key}")
    var = row.get("variable")
    name = row.get("label") or var or row.get("where")
    sub = row.get("subgroup")
    suffix = f" | {sub}" if sub else ""
    common = dict(
        row=i,
        variable=var,
        n=n,
        citation=_text(row.get("citation", raw["citation"])),
        subgroup=sub,
        units=row.get("units"),
    )
    out = []
    if kind == "mean" and "sd" not in row:
        # the source reports the mean alone: its interval takes the SD of the cohort it is
        # checked against (TargetTable.resolved), a plug-in estimate of the population SD
        if sub:
            raise TargetError(
                label, f"{key}.sd", "a mean without its SD cannot be given within a subgroup"
            )
        mean = float(row["mean"])
        out.append(
            TargetStatistic(
                label=f"{name} mean{suffix}", statistic="mean", value=mean, ci_low=math.nan,
                ci_high=math.nan, interval=PLUG_IN_INTERVAL, mean=mean, **common,
            )
        )  # fmt: skip
    elif kind == "mean":
        mean, sd = float(row["mean"]), float(row["sd"])
        if n < 2:
            raise TargetError(label, f"{key}.n", "a mean and SD need n >= 2")
        lo, hi = intervals.mean_interval(mean, sd, n, conf)
        slo, shi = intervals.sd_interval(sd, n, conf)
        extra = dict(mean=mean, sd=sd)
        out.append(
            TargetStatistic(
                label=f"{name} mean{suffix}", statistic="mean", value=mean, ci_low=lo,
                ci_high=hi, interval="mean +/- z sd/sqrt(n)", **common, **extra,
            )
        )  # fmt: skip
        out.append(
            TargetStatistic(
                label=f"{name} SD{suffix}", statistic="sd", value=sd, ci_low=slo, ci_high=shi,
                interval="chi-square interval of a normal SD", **common, **extra,
            )
        )  # fmt: skip
    elif kind == "median":
        q1, q3 = (float(v) for v in row["iqr"])
        med = float(row["median"])
        if not q1 <= med <= q3 or not q1 < q3:
            raise TargetError(
                label,
                f"{key}.iqr",
                f"quartiles must satisfy q1 <= median <= q3 and q1 < q3; got q1 {q1}, "
                f"median {med}, q3 {q3}",
            )
        quartiles = (q1, med, q3)
        for stat, level, value in zip(
            ("q25", "median", "q75"), intervals.QUARTILES, quartiles, strict=True
        ):
            lo, hi = intervals.quantile_interval(level, quartiles, n, conf)
            text = {"q25": "Q1", "median": "median", "q75": "Q3"}[stat]
            out.append(
                TargetStatistic(
                    label=f"{name} {text}{suffix}", statistic=stat, value=value, ci_low=lo,
                    ci_high=hi, interval="asymptotic quantile interval, density from the IQR",
                    quartiles=quartiles, **common,
                )
            )  # fmt: skip
    elif kind == "proportions":
        for cat, p in row["proportions"].items():
            lo, hi = intervals.proportion_interval(float(p), n, conf)
            out.append(
                TargetStatistic(
                    label=f"{name} = {cat}{suffix}", statistic="proportion", value=float(p),
                    ci_low=lo, ci_high=hi, interval="Wilson score", category=cat, **common,
                )
            )  # fmt: skip
    elif kind == "proportion":
        p = float(row["proportion"])
        lo, hi = intervals.proportion_interval(p, n, conf)
        out.append(
            TargetStatistic(
                label=f"{name}{suffix}", statistic="proportion", value=p, ci_low=lo, ci_high=hi,
                interval="Wilson score", where=row.get("where"), **common,
            )
        )  # fmt: skip
    else:
        r = float(row["correlation"])
        corr_kind = row.get("kind", "pearson")
        if n <= 3:
            raise TargetError(label, f"{key}.n", "a correlation needs n > 3")
        if row["with"] == var:
            raise TargetError(label, f"{key}.with", f"a correlation of {var!r} with itself")
        lo, hi = intervals.correlation_interval(r, n, conf, corr_kind)
        out.append(
            TargetStatistic(
                label=f"{row.get('label') or var} ~ {row['with']} ({corr_kind}){suffix}",
                statistic="correlation", value=r, ci_low=lo, ci_high=hi,
                interval="Fisher z", with_=row["with"], kind=corr_kind, **common,
            )
        )  # fmt: skip
    return out


def _identity(s: TargetStatistic) -> tuple:
    pair = tuple(sorted((s.variable or "", s.with_ or ""))) if s.with_ else (s.variable,)
    return (s.statistic, pair, s.category, s.where, s.subgroup)


def _check_duplicates(stats: list[TargetStatistic], label: str) -> None:
    seen: dict[tuple, int] = {}
    for s in stats:
        ident = _identity(s)
        if ident in seen and seen[ident] != s.row:
            raise TargetError(
                label,
                s.key,
                f"{s.label!r} repeats the figure of targets[{seen[ident]}]; give each once",
            )
        seen[ident] = s.row


def proportion_groups(stats) -> dict[tuple[str, str | None], list[TargetStatistic]]:
    """Category proportions grouped by (variable, subgroup)."""
    groups: dict[tuple[str, str | None], list[TargetStatistic]] = {}
    for s in stats:
        if s.category is not None:
            groups.setdefault((s.variable, s.subgroup), []).append(s)
    return groups


def _check_proportion_sums(stats: list[TargetStatistic], label: str) -> None:
    for (var, sub), group in proportion_groups(stats).items():
        total = sum(s.value for s in group)
        allowed = 1.0 + ROUNDING_PER_CATEGORY * len(group)
        if total > allowed:
            where = f" in subgroup {sub!r}" if sub else ""
            rows = sorted({s.key for s in group})
            raise TargetError(
                label,
                f"{rows[0]}.proportions" if len(rows) == 1 else ", ".join(rows),
                f"proportions of {var!r}{where} sum to {total:.4g}; allowed: at most 1 "
                f"(+{ROUNDING_PER_CATEGORY:g} per category for rounding, here {allowed:.4g})",
            )
