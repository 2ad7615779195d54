"""Population specs: loading, JSON-Schema validation and semantic checks.

A spec is YAML (or a dict) validated against ``cohorts/population.schema.yaml``; see that file
and ``cohorts/populations/tavr_severe_as.yaml`` for the format. Every problem raises
:class:`CohortSpecError` naming the spec file, the key and the allowed values.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ._schema import load_document
from .distributions import Marginal, MarginalError, make_marginal
from .errors import FileKeyError
from .expr import Expression, ExpressionError, compile_expression

__all__ = [
    "CohortSpecError",
    "CopulaBlock",
    "Criterion",
    "DerivedVariable",
    "Oversample",
    "PopulationSpec",
    "Target",
    "Variable",
    "load_spec",
    "nearest_correlation",
    "schema",
]


class CohortSpecError(FileKeyError):
    """A population spec is invalid (or cannot be sampled as written).

    ``source_file``, ``key`` (e.g. ``variables.age_yr.distribution.sd``) and ``detail`` as
    :class:`cohorts.errors.FileKeyError`.
    """


@dataclass(frozen=True)
class Variable:
    """A sampled variable.

    Attributes
    ----------
    name, long_name, units, source : str
    given : str or None
        Categorical it is conditioned on.
    marginals : dict
        ``{None: Marginal}`` or ``{level: Marginal}`` for each level of ``given``.
    draw : int
        Index of the patient's uniform draw used for this variable.
    """

    name: str
    long_name: str
    units: str
    source: str
    given: str | None
    marginals: dict[str | None, Marginal]
    draw: int

    @property
    def is_categorical(self) -> bool:
        return next(iter(self.marginals.values())).is_categorical

    @property
    def categories(self) -> list[str]:
        return next(iter(self.marginals.values())).categories


@dataclass(frozen=True)
class DerivedVariable:
    name: str
    expr: str
    func: Expression = field(repr=False, compare=False)
    long_name: str
    units: str
    source: str


@dataclass(frozen=True)
class CopulaBlock:
    """Gaussian-copula block.

    Attributes
    ----------
    variables : tuple of str
    kind : {"spearman", "pearson"}
    given : str or None
    target : dict
        Correlation matrices as written (after repair), by level (``None`` if unconditional).
    cholesky : dict
        Lower Cholesky factors of the normal-score correlation matrices, by level.
    repaired : bool
        Whether a nearest-correlation-matrix repair was applied.
    """

    variables: tuple[str, ...]
    kind: str
    given: str | None
    target: dict[str | None, np.ndarray] = field(repr=False)
    cholesky: dict[str | None, np.ndarray] = field(repr=False)
    repaired: bool
    source: str


@dataclass(frozen=True)
class Criterion:
    kind: str  # "inclusion" or "exclusion"
    name: str
    expr: str
    func: Expression = field(repr=False, compare=False)
    source: str


@dataclass(frozen=True)
class Oversample:
    name: str
    where: str
    func: Expression = field(repr=False, compare=False)
    factor: float
    source: str


@dataclass(frozen=True)
class Target:
    statistic: str
    value: float
    source: str
    variable: str | None = None
    with_: str | None = None
    kind: str = "pearson"
    q: float | None = None
    where: str | None = None
    where_func: Expression | None = field(default=None, repr=False, compare=False)
    subgroup: str | None = None
    subgroup_func: Expression | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class PopulationSpec:
    """A validated population spec (build with :func:`load_spec`).

    Attributes
    ----------
    name, title, description : str
    source_file : str
        File the spec came from, or the label of a dict.
    sha256 : str
        Hash of the canonical JSON of the spec content (for manifests).
    variables : dict of str to Variable
        Sampled variables in order; ``variables[k].draw`` is the uniform index used.
    derived : dict of str to DerivedVariable
    copulas : list of CopulaBlock
    criteria : list of Criterion
    oversample : list of Oversample
    targets : list of Target
    raw : dict
        The spec as loaded.
    """

    name: str
    title: str
    description: str
    source_file: str
    sha256: str
    variables: dict[str, Variable]
    derived: dict[str, DerivedVariable]
    copulas: list[CopulaBlock]
    criteria: list[Criterion]
    oversample: list[Oversample]
    targets: list[Target]
    raw: dict[str, Any] = field(repr=False)

    @property
    def n_draws(self) -> int:
        """Uniform draws per patient and attempt (one per variable, one for oversampling)."""
        return len(self.variables) + (1 if self.oversample else 0)

    @property
    def names(self) -> list[str]:
        return [*self.variables, *self.derived]

    @property
    def categories(self) -> dict[str, list[str]]:
        return {k: v.categories for k, v in self.variables.items() if v.is_categorical}

    def error(self, key: str, detail: str) -> CohortSpecError:
        return CohortSpecError(self.source_file, key, detail)


@cache
def schema() -> dict[str, Any]:
    """The population-spec JSON Schema (``cohorts/population.schema.yaml``)."""
    text = resources.files("cohorts").joinpath("population.schema.yaml").read_text("utf-8")
    return yaml.safe_load(text)


def _is_pd(matrix: np.ndarray) -> tuple[bool, float]:
    eig = float(np.linalg.eigvalsh(matrix).min())
    return eig > 1e-10, eig


def nearest_correlation(matrix: np.ndarray, *, tol: float = 1e-12, max_iter: int = 1000):
    """Nearest positive-definite correlation matrix (Higham 2002, alternating projections).

    Parameters
    ----------
    matrix : ndarray, shape (k, k)
        Symmetric matrix with unit diagonal.
    tol : float
        Convergence tolerance (Frobenius norm of successive iterates).
    max_iter : int
        Iteration limit.

    Returns
    -------
    ndarray, shape (k, k)
        Correlation matrix whose smallest eigenvalue is at least 1e-8.

    References
    ----------
    Higham NJ. Computing the nearest correlation matrix - a problem from finance.
    IMA J Numer Anal 2002;22:329-343. doi:10.1093/imanum/22.3.329
    """
    y = np.array(matrix, dtype=float)
    ds = np.zeros_like(y)
    for _ in range(max_iter):
        r = y - ds
        w, v = np.linalg.eigh(r)
        x = (v * np.maximum(w, 0.0)) @ v.T
        ds = x - r
        y_new = x.copy()
        np.fill_diagonal(y_new, 1.0)
        done = np.linalg.norm(y_new - y) < tol
        y = y_new
        if done:
            break
    w, v = np.linalg.eigh(y)
    y = (v * np.maximum(w, 1e-8)) @ v.T
    d = np.sqrt(np.diag(y))
    y = y / np.outer(d, d)
    return (y + y.T) / 2.0


def load_spec(
    path: str | Path | Mapping[str, Any] | PopulationSpec, *, source_file: str | None = None
) -> PopulationSpec:
    """Load and validate a population spec.

    Parameters
    ----------
    path : str, Path, mapping or PopulationSpec
        A YAML file, or the spec as a dict (a PopulationSpec is returned unchanged).
    source_file : str, optional
        Label naming the spec in messages (default: the path, or ``"<dict>"``).

    Returns
    -------
    PopulationSpec

    Raises
    ------
    CohortSpecError
        Schema violation, inconsistent distribution parameters (negative SD, categorical
        probabilities not summing to 1, ...), correlation matrix not positive definite (unless
        ``repair: true``), unknown variable or forbidden construct in an expression, or a
        reference to an unknown/ill-ordered variable. The message names file, key and the
        allowed values.

    Examples
    --------
    >>> from cohorts import load_spec
    >>> spec = load_spec("cohorts/populations/tavr_severe_as.yaml")  # doctest: +SKIP
    """
    if isinstance(path, PopulationSpec):
        return path
    raw, label = load_document(
        path, source_file, schema(), CohortSpecError, "a population spec", "name, variables, ..."
    )
    return _build(raw, label)


def _text(value: str) -> str:
    """Whitespace-normalised text (YAML folded scalars end with a newline)."""
    return " ".join(str(value).split())


def _marginal(spec: dict[str, Any], label: str, key: str) -> Marginal:
    try:
        return make_marginal(spec)
    except MarginalError as exc:
        raise CohortSpecError(label, f"{key}.{exc.key}", str(exc)) from None


def _compile(text, names, categories, label, key) -> Expression:
    try:
        return compile_expression(text, names, where=key, categories=categories)
    except ExpressionError as exc:
        raise CohortSpecError(label, key, str(exc).split(": ", 1)[1]) from None


def _build(raw: dict[str, Any], label: str) -> PopulationSpec:
    variables: dict[str, Variable] = {}
    for draw, (name, v) in enumerate(raw["variables"].items()):
        key = f"variables.{name}"
        given = v.get("given")
        dist = v["distribution"]
        if given is None:
            if "type" not in dist:
                raise CohortSpecError(
                    label,
                    f"{key}.distribution",
                    "has no 'type'; a per-level mapping needs 'given: <categorical>'",
                )
            marginals = {None: _marginal(dist, label, f"{key}.distribution")}
        else:
            parent = variables.get(given)
            if parent is None or not parent.is_categorical or parent.given is not None:
                allowed = [k for k, p in variables.items() if p.is_categorical and not p.given]
                raise CohortSpecError(
                    label,
                    f"{key}.given",
                    f"{given!r} is not an unconditioned categorical declared earlier; "
                    f"allowed: {allowed}",
                )
            if "type" in dist:
                dist = dict.fromkeys(parent.categories, dist)
            if set(dist) != set(parent.categories):
                raise CohortSpecError(
                    label,
                    f"{key}.distribution",
                    f"levels {sorted(dist)} do not match the categories of {given!r}; "
                    f"allowed: {parent.categories}",
                )
            marginals = {
                lvl: _marginal(dist[lvl], label, f"{key}.distribution.{lvl}")
                for lvl in parent.categories
            }
            kinds = {m.is_categorical for m in marginals.values()}
            cats = {tuple(m.categories) for m in marginals.values()}
            if len(kinds) > 1 or len(cats) > 1:
                raise CohortSpecError(
                    label,
                    f"{key}.distribution",
                    "levels must all be categorical with the same categories, or all continuous",
                )
        variables[name] = Variable(
            name, v["long_name"], v["units"], _text(v["source"]), given, marginals, draw
        )

    categories = {k: v.categories for k, v in variables.items() if v.is_categorical}
    known: set[str] = set(variables)
    derived: dict[str, DerivedVariable] = {}
    for name, d in (raw.get("derived") or {}).items():
        key = f"derived.{name}"
        if name in known:
            raise CohortSpecError(label, key, f"{name!r} is already a sampled variable")
        func = _compile(d["expr"], known, categories, label, f"{key}.expr")
        derived[name] = DerivedVariable(
            name, d["expr"], func, d["long_name"], d["units"], _text(d["source"])
        )
        known.add(name)

    copulas = [
        _copula(block, i, variables, label) for i, block in enumerate(raw.get("copula") or [])
    ]
    seen: dict[str, int] = {}
    for i, block in enumerate(copulas):
        for var in block.variables:
            if var in seen:
                raise CohortSpecError(
                    label,
                    f"copula[{i}].variables",
                    f"{var!r} is already in copula[{seen[var]}]; a variable joins one block",
                )
            seen[var] = i
    conditioning = [(f"copula[{i}].given", b.given) for i, b in enumerate(copulas) if b.given]
    conditioning += [(f"variables.{k}.given", v.given) for k, v in variables.items() if v.given]
    for key, given in conditioning:
        if given in seen and copulas[seen[given]].given is not None:
            raise CohortSpecError(
                label,
                key,
                f"{given!r} is in the conditional block copula[{seen[given]}]; a conditioning "
                "categorical may only join an unconditional block",
            )

    criteria = []
    crit = raw.get("criteria") or {}
    for kind in ("inclusion", "exclusion"):
        for j, c in enumerate(crit.get(kind) or []):
            key = f"criteria.{kind}[{j}].expr"
            func = _compile(c["expr"], known, categories, label, key)
            criteria.append(
                Criterion(kind, c.get("name", c["expr"]), c["expr"], func, _text(c["source"]))
            )

    oversample = []
    for j, o in enumerate(raw.get("oversample") or []):
        func = _compile(o["where"], known, categories, label, f"oversample[{j}].where")
        oversample.append(
            Oversample(o["name"], o["where"], func, float(o["factor"]), _text(o["source"]))
        )

    targets = []
    for j, t in enumerate(raw.get("targets") or []):
        key = f"targets[{j}]"
        for field_name in ("variable", "with"):
            if t.get(field_name) is not None and t[field_name] not in known:
                raise CohortSpecError(
                    label,
                    f"{key}.{field_name}",
                    f"unknown variable {t[field_name]!r}; allowed: {sorted(known)}",
                )
        if t["statistic"] in ("mean", "sd", "quantile", "correlation") and t["variable"] in (
            categories
        ):
            raise CohortSpecError(
                label, f"{key}.variable", f"{t['variable']!r} is categorical; use a proportion"
            )
        where_func = (
            _compile(t["where"], known, categories, label, f"{key}.where") if "where" in t else None
        )
        sub_func = (
            _compile(t["subgroup"], known, categories, label, f"{key}.subgroup")
            if "subgroup" in t
            else None
        )
        targets.append(
            Target(
                statistic=t["statistic"],
                value=float(t["value"]),
                source=_text(t["source"]),
                variable=t.get("variable"),
                with_=t.get("with"),
                kind=t.get("kind", "pearson"),
                q=t.get("q"),
                where=t.get("where"),
                where_func=where_func,
                subgroup=t.get("subgroup"),
                subgroup_func=sub_func,
            )
        )

    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":")).encode()
    return PopulationSpec(
        name=raw["name"],
        title=raw.get("title", raw["name"]),
        description=raw.get("description", ""),
        source_file=label,
        sha256=hashlib.sha256(canonical).hexdigest(),
        variables=variables,
        derived=derived,
        copulas=copulas,
        criteria=criteria,
        oversample=oversample,
        targets=targets,
        raw=raw,
    )


def _copula(block: dict[str, Any], i: int, variables: dict[str, Variable], label: str):
    key = f"copula[{i}]"
    names = tuple(block["variables"])
    for name in names:
        if name not in variables:
            raise CohortSpecError(
                label,
                f"{key}.variables",
                f"{name!r} is not a sampled variable; allowed: {list(variables)}",
            )
    given = block.get("given")
    matrices = block["matrix"]
    if given is None:
        if not isinstance(matrices, list):
            raise CohortSpecError(
                label, f"{key}.matrix", "per-level matrices need 'given: <categorical>'"
            )
        matrices = {None: matrices}
    else:
        parent = variables.get(given)
        if parent is None or not parent.is_categorical or parent.given is not None:
            allowed = [k for k, p in variables.items() if p.is_categorical and not p.given]
            raise CohortSpecError(
                label,
                f"{key}.given",
                f"{given!r} is not an unconditioned categorical; allowed: {allowed}",
            )
        if given in names:
            raise CohortSpecError(
                label, f"{key}.given", f"{given!r} cannot condition its own block"
            )
        if isinstance(matrices, list):
            matrices = dict.fromkeys(parent.categories, matrices)
        if set(matrices) != set(parent.categories):
            raise CohortSpecError(
                label,
                f"{key}.matrix",
                f"levels {sorted(matrices)} do not match the categories of {given!r}; "
                f"allowed: {parent.categories}",
            )
    kind = block.get("kind", "spearman")
    repair = bool(block.get("repair", False))
    target, chol = {}, {}
    repaired = False
    k = len(names)
    for lvl, m in matrices.items():
        mkey = f"{key}.matrix" + (f".{lvl}" if lvl is not None else "")
        a = np.asarray(m, dtype=float)
        if a.shape != (k, k):
            raise CohortSpecError(
                label, mkey, f"shape {a.shape} does not match {k} variables {list(names)}"
            )
        if not np.allclose(a, a.T, atol=1e-9):
            raise CohortSpecError(label, mkey, "matrix is not symmetric")
        if not np.allclose(np.diag(a), 1.0):
            raise CohortSpecError(label, mkey, "diagonal must be 1 (a correlation matrix)")
        latent = 2.0 * np.sin(math.pi * a / 6.0) if kind == "spearman" else a.copy()
        np.fill_diagonal(latent, 1.0)
        ok, eig = _is_pd(latent)
        if not ok:
            if not repair:
                scale = "normal-score " if kind == "spearman" else ""
                raise CohortSpecError(
                    label,
                    mkey,
                    f"the {scale}correlation matrix is not positive definite (smallest "
                    f"eigenvalue {eig:.4g}); correct it, or set '{key}.repair: true' to use "
                    "the nearest correlation matrix (Higham 2002)",
                )
            latent = nearest_correlation(latent)
            a = (6.0 / math.pi) * np.arcsin(latent / 2.0) if kind == "spearman" else latent
            np.fill_diagonal(a, 1.0)
            repaired = True
        target[lvl] = a
        chol[lvl] = np.linalg.cholesky(latent)
    return CopulaBlock(names, kind, given, target, chol, repaired, _text(block["source"]))
