"""Refitting a population spec's own parameters to a target table.

:func:`fit_spec` adjusts the numbers of a population spec - marginal means and SDs,
category probabilities, copula correlations - so that a cohort *generated* from the spec
reproduces the published figures. Each evaluation samples ``n`` patients with the same
seed (common random numbers: patient ``i`` keeps its uniforms, so the sampled statistics
are smooth functions of the parameters up to criteria re-draws and category switches) and
computes every figure as :func:`cohorts.certificate` does; ``scipy.optimize.least_squares``
minimises the differences measured in interval units, ``(achieved - target) / half-width``,
plus a small ridge ``0.01 theta`` that keeps parameters no target informs at the spec's
values.

Parameters (``theta = 0`` is the spec as written):

====================================  =========================================================
spec number                           fitted as
====================================  =========================================================
normal / truncnorm / beta ``mean``    ``mean_0 + theta sd_0`` (truncnorm: the parent normal's;
                                      beta: bounds fixed, values leaving its range rejected)
lognormal / gamma ``mean``            ``mean_0 exp(theta sd_0 / mean_0)`` (stays positive)
``sd`` of all five                    ``sd_0 exp(theta)``
categorical ``probabilities``         ``p_k proportional to p_0k exp(theta_k)``, last category
                                      the reference (a zero probability stays zero)
copula matrix entry                   ``tanh(atanh(rho_0) + theta)`` on the block's scale
                                      (``spearman`` or ``pearson``)
====================================  =========================================================

Which parameters a figure moves: those of the sampled variables it names (``variable``,
``with``, the names in ``where``), derived variables replaced by the sampled variables
their expressions use. For a variable with ``given: G`` a figure in subgroup ``G == 'level'``
moves that level's parameters; any other figure moves a parameter shared by all levels. A
correlation moves its copula entry only (both variables must be in one block).

**What cannot be fitted**: uniform and empirical marginals, the bounds of truncnorm and beta; derived expressions,
criteria and oversampling (fixed: their effect is in the sampled figures); correlations of
variables in different copula blocks or of derived variables; any figure whose variables
reach no fittable parameter (an error names it). Subgroup figures of a variable that is not
conditioned on the subgroup are met only through the variable's overall parameters.
"""

from __future__ import annotations

import ast
import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize

from .certificate import certificate
from .errors import CohortError, MatchError
from .evaluate import bind
from .spec import PopulationSpec, load_spec
from .targets import TargetStatistic, TargetTable, load_targets
from .weighted import cohort_weights

__all__ = ["FITTABLE", "SpecFit", "fit_spec"]

#: Marginal types whose mean and SD can be fitted.
FITTABLE = ("normal", "truncnorm", "lognormal", "gamma", "beta")
#: Weight of the ridge residuals ``theta`` (interval units per unit of theta).
RIDGE = 0.01
#: Finite-difference step of the Jacobian in theta units (far above the 1/n steps that
#: criteria re-draws and category switches put in the sampled figures).
DIFF_STEP = 0.02


@dataclass(frozen=True)
class _Param:
    kind: str  # "location", "scale", "logit", "correlation"
    variable: str  # sampled variable, or "copula[i]"
    levels: tuple  # levels of the conditioning categorical (None: all or unconditioned)
    detail: Any = None  # logit: category; correlation: (i, j)

    @property
    def name(self) -> str:
        where = "" if self.levels == (None,) else f"[{','.join(map(str, self.levels))}]"
        extra = "" if self.detail is None else f":{self.detail}"
        return f"{self.variable}{where}.{self.kind}{extra}"


@dataclass(frozen=True)
class SpecFit:
    """A population spec refitted to a target table (from :func:`fit_spec`).

    Attributes
    ----------
    spec : PopulationSpec
        The fitted spec (``spec.raw`` is its dict; the changed variables' ``source`` say so).
    parameters : pandas.DataFrame
        ``key, initial, fitted`` for every number of the spec that changed (dotted keys).
    certificate : pandas.DataFrame
        Certificate of the fitting sample (``n`` patients, ``seed``) of the fitted spec.
    summary : dict
        ``n``, ``seed``, ``n_parameters``, ``fitted_parameters`` (names), ``nfev``,
        ``cost`` (half the sum of squared residuals), ``status`` (of least_squares).
    """

    spec: PopulationSpec
    parameters: pd.DataFrame
    certificate: pd.DataFrame = field(repr=False)
    summary: dict[str, Any] = field(default_factory=dict)


def _names(expr: str) -> set[str]:
    return {n.id for n in ast.walk(ast.parse(expr, mode="eval")) if isinstance(n, ast.Name)}


def _sampled_inputs(spec: PopulationSpec, names: set[str]) -> set[str]:
    out: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in spec.variables:
            out.add(name)
        elif name in spec.derived:
            todo.extend(_names(spec.derived[name].expr) - out)
    return out


def _subgroup_level(subgroup: str | None, given: str | None, spec: PopulationSpec):
    """The level of ``given`` that ``subgroup`` picks (``G == 'level'`` or a code), or None."""
    if not subgroup or not given:
        return None
    node = ast.parse(subgroup, mode="eval").body
    if not (isinstance(node, ast.Compare) and len(node.ops) == 1):
        return None
    if not isinstance(node.ops[0], ast.Eq):
        return None
    left, right = node.left, node.comparators[0]
    if isinstance(right, ast.Name):
        left, right = right, left
    if not (isinstance(left, ast.Name) and left.id == given and isinstance(right, ast.Constant)):
        return None
    cats = spec.variables[given].categories
    value = right.value
    if isinstance(value, str) and value in cats:
        return value
    if isinstance(value, int) and 0 <= value < len(cats):
        return cats[value]
    return None


def _params_of(spec: PopulationSpec, s: TargetStatistic) -> tuple[list[_Param], list[str]]:
    """Parameters a figure moves, and why some of its variables cannot be fitted."""
    params: list[_Param] = []
    reasons: list[str] = []
    if s.statistic == "correlation":
        a, b = s.variable, s.with_
        for i, block in enumerate(spec.copulas):
            if a in block.variables and b in block.variables:
                level = _subgroup_level(s.subgroup, block.given, spec)
                levels = (level,) if level else (None,)
                pair = tuple(sorted((block.variables.index(a), block.variables.index(b))))
                return [_Param("correlation", f"copula[{i}]", levels, pair)], []
        return [], [f"{a!r} and {b!r} are not in one copula block"]
    names = {s.variable, s.with_} - {None}
    if s.where:
        names |= _names(s.where)
    unknown = sorted(n for n in names if n not in spec.variables and n not in spec.derived)
    if unknown:
        return [], [f"{unknown} are not variables of spec {spec.name!r}"]
    for var_name in sorted(_sampled_inputs(spec, names)):
        var = spec.variables[var_name]
        level = _subgroup_level(s.subgroup, var.given, spec)
        levels = (level,) if level else (None,)
        if var.is_categorical:
            for cat in var.categories[:-1]:
                params.append(_Param("logit", var_name, levels, cat))
            continue
        types = {m.type for m in var.marginals.values()}
        if types <= set(FITTABLE):
            params += [_Param("location", var_name, levels), _Param("scale", var_name, levels)]
        else:
            reasons.append(f"{var_name!r} has a {sorted(types)} marginal (fittable: {FITTABLE})")
    return params, reasons


def _levels(spec: PopulationSpec, given: str | None, levels: tuple) -> list:
    if given is None:
        return [None]
    return spec.variables[given].categories if levels == (None,) else list(levels)


def _distribution(raw: dict, var: str, level, categories) -> dict:
    """The distribution dict of ``var`` (at ``level``), expanding a shared one per level."""
    entry = raw["variables"][var]
    dist = entry["distribution"]
    if level is None:
        return dist
    if "type" in dist:
        entry["distribution"] = dist = {c: copy.deepcopy(dist) for c in categories}
    return dist[level]


def _apply(spec: PopulationSpec, params: list[_Param], theta: np.ndarray) -> dict:
    raw = copy.deepcopy(spec.raw)
    base = spec.raw
    logits: dict[tuple, dict[str, float]] = {}
    for p, t in zip(params, theta, strict=True):
        if p.kind == "correlation":
            i = int(p.variable[7:-1])
            block = spec.copulas[i]
            entry = raw["copula"][i]
            for level in _levels(spec, block.given, p.levels):
                if level is not None and isinstance(entry["matrix"], list):
                    entry["matrix"] = {c: copy.deepcopy(entry["matrix"]) for c in block.target}
                m = entry["matrix"] if level is None else entry["matrix"][level]
                a, b = p.detail
                rho0 = float(block.target[level][a, b])
                value = math.tanh(math.atanh(float(np.clip(rho0, -0.999, 0.999))) + t)
                m[a][b] = m[b][a] = value
            continue
        var = spec.variables[p.variable]
        cats = spec.variables[var.given].categories if var.given else None
        for level in _levels(spec, var.given, p.levels):
            dist = _distribution(raw, p.variable, level, cats)
            dist0 = _distribution(copy.deepcopy(base), p.variable, level, cats)
            if p.kind == "logit":
                shifts = logits.setdefault((p.variable, level), {})
                shifts[p.detail] = shifts.get(p.detail, 0.0) + t
            elif p.kind == "scale":
                dist["sd"] = float(dist["sd"] * math.exp(t))
            elif dist["type"] in ("lognormal", "gamma"):
                dist["mean"] = float(dist["mean"] * math.exp(t * dist0["sd"] / dist0["mean"]))
            else:
                dist["mean"] = float(dist["mean"] + t * dist0["sd"])
    for (var_name, level), shifts in logits.items():
        var = spec.variables[var_name]
        cats = spec.variables[var.given].categories if var.given else None
        dist = _distribution(raw, var_name, level, cats)
        p0 = np.asarray(dist["probabilities"], dtype=float)
        logw = np.log(np.where(p0 > 0, p0, 1.0)) + [shifts.get(c, 0.0) for c in var.categories]
        w = np.where(p0 > 0, np.exp(logw - logw.max()), 0.0)
        dist["probabilities"] = (w / w.sum()).tolist()
    return raw


def _changed(spec: PopulationSpec, raw: dict) -> pd.DataFrame:
    rows = []

    def walk(a, b, key):
        if isinstance(a, dict) and isinstance(b, dict):
            for k in b:
                walk(a.get(k) if k in a else None, b[k], f"{key}.{k}" if key else str(k))
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                walk(x, y, f"{key}[{i}]")
        elif isinstance(b, int | float) and not isinstance(b, bool):
            if not isinstance(a, int | float) or not math.isclose(a, b, rel_tol=1e-12):
                rows.append({"key": key, "initial": a, "fitted": b})

    original = copy.deepcopy(spec.raw)
    for name, entry in raw["variables"].items():  # compare level by level
        dist, dist0 = entry["distribution"], original["variables"][name]["distribution"]
        if "type" not in dist and "type" in dist0:
            original["variables"][name]["distribution"] = {c: dist0 for c in dist}
    for i, block in enumerate(raw.get("copula") or []):
        m0 = original["copula"][i]["matrix"]
        if isinstance(block["matrix"], dict) and isinstance(m0, list):
            original["copula"][i]["matrix"] = {c: m0 for c in block["matrix"]}
    walk(original, raw, "")
    return pd.DataFrame(rows, columns=["key", "initial", "fitted"])


def _residuals(spec, table, params, theta, n, seed, target, half) -> np.ndarray:
    """Differences of the figures in interval units, and the ridge terms."""
    from .sampling import sample

    try:
        trial = load_spec(_apply(spec, params, theta), source_file=spec.source_file)
        ds = sample(trial, n, seed=seed)
        got = bind(table, ds).achieved(cohort_weights(ds))["value"]
    except CohortError:  # e.g. a correlation matrix that is no longer positive definite
        return np.full(len(target) + len(params), 1e3)
    r = (got - target) / half
    return np.concatenate([np.where(np.isfinite(r), r, 1e3), RIDGE * theta])


def fit_spec(
    spec: PopulationSpec | str | Path | dict,
    targets: TargetTable | str | Path | dict,
    *,
    n: int = 20_000,
    seed: int = 0,
    max_nfev: int | None = None,
) -> SpecFit:
    """Refit a population spec's parameters so that its cohorts reproduce a target table.

    Parameters
    ----------
    spec : PopulationSpec, path or mapping
    targets : TargetTable, path or mapping
    n : int
        Patients of the common-random-numbers sample every evaluation uses.
    seed : int
        Seed of that sample (use the trial seed: the generated cohort then starts with it).
    max_nfev : int, optional
        Limit of least-squares iterations (Jacobians; default 40; each costs ``parameters
        + 1`` samples of ``n`` patients).

    Returns
    -------
    SpecFit
        The fitted spec, the changed numbers, the fitting sample's certificate, a summary.

    Raises
    ------
    MatchError
        A figure that no fittable parameter moves (the message names it and why).
    InfeasibleTargetsError
        The best fit still misses targets (message: which, and by how much).
    TargetError
        The table does not fit the spec's cohorts.

    Examples
    --------
    >>> import cohorts
    >>> spec = {"name": "demo", "variables": {"x": {"long_name": "x", "units": "1",
    ...     "source": "example", "distribution": {"type": "normal", "mean": 0, "sd": 1}}}}
    >>> table = {"name": "t", "citation": "example", "n": 300,
    ...          "targets": [{"variable": "x", "mean": 2.0, "sd": 0.5}]}
    >>> fit = cohorts.fit_spec(spec, table, n=5000, seed=1)
    >>> round(fit.spec.raw["variables"]["x"]["distribution"]["mean"], 1)
    2.0
    """
    from .matching import infeasible_error
    from .sampling import sample

    spec = load_spec(spec)
    table = load_targets(targets)
    first = sample(spec, n, seed=seed)
    table = table.resolved(first)
    bound = bind(table, first)
    params: list[_Param] = []
    problems: dict[str, str] = {}
    for s in table.statistics:
        found, reasons = _params_of(spec, s)
        if not found:
            why = "; ".join(reasons) or "it names no sampled variable"
            problems.setdefault(s.key, f"{s.key} ({s.label}): {why}")
        params += [p for p in found if p not in params]
    if problems:
        raise MatchError(
            f"{table.source_file}: fit_spec cannot fit {len(problems)} target(s) with the "
            f"parameters of spec {spec.name!r}: "
            + "; ".join(problems.values())
            + ". Fittable: means and "
            f"SDs of {list(FITTABLE)} marginals, category probabilities, correlations within a "
            "copula block; use method 'weights' or 'select' for the others"
        )
    target = np.array([s.value for s in table.statistics])
    half = np.array([(s.ci_high - s.ci_low) / 2.0 for s in table.statistics])
    del bound, first

    cache: dict[bytes, np.ndarray] = {}

    def residuals(theta: np.ndarray) -> np.ndarray:
        key = theta.tobytes()
        if key not in cache:
            cache.clear() if len(cache) > 4 * len(params) + 8 else None
            cache[key] = _residuals(spec, table, params, theta, n, seed, target, half)
        return cache[key]

    def jacobian(theta: np.ndarray) -> np.ndarray:
        # forward differences with an absolute step in theta units (scipy's relative steps
        # vanish at theta = 0, where the sampled figures are step functions at 1/n scale)
        f0 = residuals(theta)
        jac = np.empty((f0.size, theta.size))
        for k in range(theta.size):
            step = np.zeros_like(theta)
            step[k] = DIFF_STEP
            jac[:, k] = (residuals(theta + step) - f0) / DIFF_STEP
        return jac

    res = optimize.least_squares(
        residuals,
        np.zeros(len(params)),
        jac=jacobian,
        method="trf",
        x_scale=1.0,
        max_nfev=max_nfev or 40,
    )
    raw = _apply(spec, params, res.x)
    touched = {p.variable for p in params}
    for name in touched:
        note = f"; refitted by cohorts.fit_spec to {table.name} ({table.citation})"
        if name.startswith("copula["):
            raw["copula"][int(name[7:-1])]["source"] += note
        else:
            raw["variables"][name]["source"] += note
    raw["name"] = f"{spec.name}-fitted-{table.name}"
    raw["description"] = (
        f"{spec.raw.get('description', spec.title)} Refitted by cohorts.fit_spec to target "
        f"table {table.name} ({table.citation})."
    ).strip()
    fitted = load_spec(raw, source_file=f"{spec.source_file} (fitted to {table.source_file})")
    ds = sample(fitted, n, seed=seed)
    cert = certificate(ds, table, method="fit")
    if not cert["passed"].all():
        raise infeasible_error(
            table,
            cert,
            f"no values of the {len(params)} fittable parameters of spec {spec.name!r} meet "
            f"every target (least squares on {n} patients, seed {seed})",
            "check them, or use method 'weights' or 'select'",
        )
    summary = {
        "n": int(n),
        "seed": int(seed),
        "n_parameters": len(params),
        "fitted_parameters": [p.name for p in params],
        "nfev": int(res.nfev),
        "cost": float(res.cost),
        "status": int(res.status),
    }
    return SpecFit(fitted, _changed(spec, raw), cert, summary)
