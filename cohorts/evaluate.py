"""A target table bound to a cohort: subgroup masks, achieved values, moment conditions.

:func:`bind` checks a :class:`~cohorts.targets.TargetTable` against a cohort (variables,
categories, units, expressions) and returns a :class:`BoundTargets` that evaluates every
published figure on the cohort under any weights (:meth:`BoundTargets.achieved`) and writes
the *moment conditions* of the figures - functions ``c(x)`` whose weighted mean is zero
exactly when the weighted cohort reproduces the figure (:meth:`BoundTargets.moments`):

==============  ====================================================================
figure          moment condition (``g`` = 1 inside the row's subgroup, else 0)
==============  ====================================================================
mean m          ``g (x - m)``
SD s            ``g ((x - m)^2 - s^2)`` (with the row's mean m: population moments)
quantile q_p    ``g (1{x <= q_p} - p)``
proportion p    ``g (1{event} - p)``
correlation r   ``g ((x - m_x)(y - m_y) - r s_x s_y)``, Pearson only, with the mean and
                SD targets of both variables in the same subgroup
==============  ====================================================================

Categorical proportions given for every category are normalised to sum to 1 and the last
one's condition is left out (it follows from the others).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import xarray as xr

from .expr import ExpressionError, compile_expression
from .targets import ROUNDING_PER_CATEGORY, TargetStatistic, TargetTable, proportion_groups
from .weighted import kish_n, weighted_corr, weighted_mean, weighted_quantile, weighted_sd

__all__ = ["BoundTargets", "bind"]


class _Columns(Mapping):
    """Cohort variables as numpy arrays, loaded on first use (expressions read few)."""

    def __init__(self, ds: xr.Dataset):
        self._ds = ds
        self._cache: dict[str, np.ndarray] = {}
        self.names = [k for k, v in ds.data_vars.items() if v.dims == ("patient",)]

    def __getitem__(self, name):
        if name not in self._cache:
            self._cache[name] = np.asarray(self._ds[name].values)
        return self._cache[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


def _categories(var: xr.DataArray) -> list[str] | None:
    meanings = var.attrs.get("flag_meanings")
    return str(meanings).split() if meanings else None


def _codes(var: xr.DataArray) -> list[int]:
    cats = _categories(var) or []
    values = var.attrs.get("flag_values")
    return [int(v) for v in values] if values is not None else list(range(len(cats)))


@dataclass
class BoundTargets:
    """A target table checked against one cohort (build with :func:`bind`).

    Attributes
    ----------
    table : TargetTable
    n_patients : int
    masks : list of ndarray or None
        Subgroup of each statistic (None: every patient).
    matching_values : ndarray
        The figures the moment conditions use (category proportions normalised).
    """

    table: TargetTable
    n_patients: int
    masks: list[np.ndarray | None]
    matching_values: np.ndarray
    _data: _Columns
    _events: dict[int, np.ndarray]
    _implied: set[int]

    @property
    def statistics(self) -> tuple[TargetStatistic, ...]:
        return self.table.statistics

    @property
    def n_moments(self) -> int:
        """Number of moment conditions :meth:`moments` yields."""
        return len(self.statistics) - len(self._implied)

    def _x(self, name: str) -> np.ndarray:
        return np.asarray(self._data[name], dtype=float)

    def _masked(self, j: int, arr: np.ndarray, w: np.ndarray):
        m = self.masks[j]
        return (arr, w) if m is None else (arr[m], w[m])

    def achieved(self, w: np.ndarray) -> dict[str, np.ndarray]:
        """Every figure evaluated on the cohort with weights ``w``.

        Returns
        -------
        dict of ndarray
            ``value`` (the weighted statistic), ``sd`` (weighted SD of the variable in the
            row's subgroup, for mean rows; NaN otherwise), ``n`` (patients of the subgroup
            with positive weight) and ``n_eff`` (their Kish effective number).
        """
        w = np.asarray(w, dtype=float)
        k = len(self.statistics)
        out = {name: np.full(k, np.nan) for name in ("value", "sd", "n", "n_eff")}
        quantiles: dict[tuple, np.ndarray] = {}
        for j, s in enumerate(self.statistics):
            m = self.masks[j]
            wm = w if m is None else w[m]
            out["n"][j] = np.count_nonzero(wm > 0)
            out["n_eff"][j] = kish_n(wm)
            if out["n"][j] == 0:
                continue
            if s.statistic == "proportion":
                ev, wm = self._masked(j, self._events[j], w)
                out["value"][j] = weighted_mean(ev, wm)
            elif s.statistic in ("mean", "sd"):
                x, wm = self._masked(j, self._x(s.variable), w)
                sd = weighted_sd(x, wm)
                out["value"][j] = weighted_mean(x, wm) if s.statistic == "mean" else sd
                out["sd"][j] = sd
            elif s.level is not None:
                ident = (s.variable, s.subgroup)
                if ident not in quantiles:
                    x, wm = self._masked(j, self._x(s.variable), w)
                    keep = wm > 0
                    quantiles[ident] = weighted_quantile(x[keep], wm[keep], [0.25, 0.5, 0.75])
                out["value"][j] = quantiles[ident][[0.25, 0.5, 0.75].index(s.level)]
            else:
                x, wm = self._masked(j, self._x(s.variable), w)
                y, _ = self._masked(j, self._x(s.with_), w)
                out["value"][j] = weighted_corr(x, y, wm, s.kind)
        return out

    def moments(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(statistic index, moment condition)`` for every figure a weighting must meet.

        Raises
        ------
        TargetError
            A Spearman correlation, or a correlation without mean and SD targets of both
            variables in its subgroup (weights cannot express it as a moment).
        """
        stats = self.statistics
        for j, s in enumerate(stats):
            if j in self._implied:
                continue
            t = self.matching_values[j]
            if s.statistic == "proportion":
                c = self._events[j] - t
            elif s.statistic == "mean":
                c = self._x(s.variable) - t
            elif s.statistic == "sd":
                c = (self._x(s.variable) - s.mean) ** 2 - t * t
            elif s.level is not None:
                c = (self._x(s.variable) <= t).astype(float) - s.level
            else:
                c = self._correlation_moment(s)
            m = self.masks[j]
            yield j, c if m is None else np.where(m, c, 0.0)

    def _correlation_moment(self, s: TargetStatistic) -> np.ndarray:
        if s.kind != "pearson":
            raise self.table.error(
                s.key, "a Spearman correlation cannot be met by weights; allowed: pearson"
            )
        moments = {}
        for var in (s.variable, s.with_):
            found = [
                t
                for t in self.statistics
                if t.statistic == "mean" and t.variable == var and t.subgroup == s.subgroup
            ]
            if not found:
                raise self.table.error(
                    s.key,
                    f"a correlation is met by weights only with mean and SD targets of both "
                    f"variables in its subgroup; {var!r} has none"
                    + (f" in subgroup {s.subgroup!r}" if s.subgroup else ""),
                )
            moments[var] = (found[0].mean, found[0].sd)
        (mx, sx), (my, sy) = moments[s.variable], moments[s.with_]
        return (self._x(s.variable) - mx) * (self._x(s.with_) - my) - s.value * sx * sy


def bind(table: TargetTable, ds: xr.Dataset) -> BoundTargets:
    """Check ``table`` against the cohort ``ds`` and prepare its evaluation.

    Raises
    ------
    TargetError
        See :meth:`TargetTable.check`.
    """
    data = _Columns(ds)
    available = sorted(data.names)
    categories = {
        name: cats
        for name in data.names
        if (cats := _categories(ds[name])) and _codes(ds[name]) == list(range(len(cats)))
    }
    compiled: dict[str, np.ndarray | None] = {}
    n = ds.sizes["patient"]

    def expression(text: str, key: str) -> np.ndarray:
        if text not in compiled:
            try:
                func = compile_expression(text, set(data.names), where=key, categories=categories)
            except ExpressionError as exc:
                raise table.error(key, str(exc).split(": ", 1)[1]) from None
            with np.errstate(all="ignore"):
                compiled[text] = np.broadcast_to(np.asarray(func(data), dtype=bool), (n,))
        return compiled[text]

    masks: list[np.ndarray | None] = []
    events: dict[int, np.ndarray] = {}
    for j, s in enumerate(table.statistics):
        for field, name in (("variable", s.variable), ("with", s.with_)):
            if name is not None and name not in data.names:
                raise table.error(
                    f"{s.key}.{field}",
                    f"the cohort has no variable {name!r}; available: {available}",
                )
        mask = expression(s.subgroup, f"{s.key}.subgroup") if s.subgroup else None
        if mask is not None and not mask.any():
            raise table.error(
                f"{s.key}.subgroup", f"no patient of the cohort is in subgroup {s.subgroup!r}"
            )
        masks.append(mask)
        var = ds[s.variable] if s.variable else None
        if var is not None and s.units is not None:
            have = var.attrs.get("units")
            if have is not None and str(have) != s.units:
                raise table.error(
                    f"{s.key}.units",
                    f"{s.units!r} differs from the cohort's {s.variable} units {have!r}; "
                    "convert the figures to the cohort's units",
                )
        if s.statistic == "proportion":
            events[j] = _event(table, s, ds, data, expression)
        else:
            for name in filter(None, (s.variable, s.with_)):
                _check_continuous(table, s, ds[name], name, mask)
    values = np.array([s.value for s in table.statistics])
    implied = _normalise_proportions(table, ds, values)
    return BoundTargets(table, n, masks, values, data, events, implied)


def _event(table, s, ds, data, expression) -> np.ndarray:
    if s.where is not None:
        return expression(s.where, f"{s.key}.where").astype(float)
    var = ds[s.variable]
    x = np.asarray(data[s.variable])
    cats = _categories(var)
    if s.category is not None:
        if cats is None:
            raise table.error(
                f"{s.key}.proportions",
                f"{s.variable!r} is not categorical (no flag_meanings); proportions need a "
                "categorical variable",
            )
        if s.category not in cats:
            raise table.error(
                f"{s.key}.proportions",
                f"{s.variable!r} has no category {s.category!r}; allowed: {cats}",
            )
        return (x == _codes(var)[cats.index(s.category)]).astype(float)
    if cats is not None and len(cats) == 2 and cats[1].lower() in ("true", "yes"):
        return (x == _codes(var)[1]).astype(float)
    if cats is None and x.dtype.kind in "biuf" and np.isin(x, (0, 1)).all():
        return (x == 1).astype(float)
    allowed = f"categories {cats}" if cats else "values other than 0/1"
    raise table.error(
        f"{s.key}.variable",
        f"{s.variable!r} is not a yes/no variable (it has {allowed}); use 'proportions' for "
        "a categorical or 'where' for a condition",
    )


def _check_continuous(table, s, var: xr.DataArray, name: str, mask) -> None:
    if _categories(var) is not None:
        raise table.error(
            f"{s.key}.variable",
            f"{name!r} is categorical ({_categories(var)}); a {s.statistic} needs a numeric "
            "variable - give its 'proportions'",
        )
    x = np.asarray(var.values)
    if x.dtype.kind not in "biuf":
        raise table.error(f"{s.key}.variable", f"{name!r} is not numeric (dtype {x.dtype})")
    bad = ~np.isfinite(x) if mask is None else ~np.isfinite(x) & mask
    if bad.any():
        raise table.error(
            f"{s.key}.variable",
            f"{name!r} is not finite for {int(bad.sum())} patients of the cohort",
        )


def _normalise_proportions(table: TargetTable, ds: xr.Dataset, values: np.ndarray) -> set[int]:
    """Normalise complete sets of category proportions; return the implied (left-out) ones."""
    index = {id(s): j for j, s in enumerate(table.statistics)}
    implied: set[int] = set()
    for (var, sub), group in proportion_groups(table.statistics).items():
        cats = _categories(ds[var]) or []
        if {s.category for s in group} != set(cats):
            continue
        total = sum(s.value for s in group)
        tol = ROUNDING_PER_CATEGORY * len(group)
        if abs(total - 1.0) > tol:
            where = f" in subgroup {sub!r}" if sub else ""
            raise table.error(
                ", ".join(sorted({s.key for s in group})),
                f"proportions of every category of {var!r}{where} sum to {total:.4g}; allowed: "
                f"1 (+/- {tol:.3g} for rounding)",
            )
        for s in group:
            values[index[id(s)]] = s.value / total
        implied.add(index[id(group[-1])])
    return implied
