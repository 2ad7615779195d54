"""V&V 40 credibility plans: model risk, credibility goals and goal-vs-achieved assessment.

A plan (YAML, validated against ``plan.schema.yaml``) states the question of interest, the
context of use, model influence and decision consequence (which give the model risk through
the V&V 40 risk matrix) and, for each of the 13 V&V 40 credibility factors, a graded goal and
the evidence item that must meet it. Evidence is a (nested) dict computed by the workflow —
never typed into the plan — and each goal is a machine-checkable criterion on one entry. The
keys a plan may name are listed once, in :data:`credibility.evidence.EVIDENCE_KEYS`; a plan
naming another key is refused when it is loaded.

References
----------
ASME V&V 40-2018. Assessing credibility of computational modeling through verification and
    validation: application to medical devices. New York: ASME.
U.S. FDA (2023). Assessing the credibility of computational modeling and simulation in medical
    device submissions. Guidance for industry and FDA staff.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pandas as pd
import yaml

from .errors import CredibilityError
from .evidence import closest_keys, evidence_key, lookup_evidence

__all__ = [
    "CREDIBILITY_FACTORS",
    "LEVELS",
    "Plan",
    "PlanError",
    "assess",
    "format_criterion",
    "load_plan",
    "model_risk",
]

SCHEMA_PATH = Path(__file__).with_name("plan.schema.yaml")

#: Influence / consequence levels of the V&V 40 risk matrix.
LEVELS = ("low", "medium", "high")

#: The 13 V&V 40 credibility factors (ASME V&V 40-2018, Table 5-1) and their activity group;
#: the plan schema's ``credibility_factors`` keys are filled from here.
CREDIBILITY_FACTORS: dict[str, str] = {
    "software_quality_assurance": "Verification: code",
    "numerical_code_verification": "Verification: code",
    "discretization_error": "Verification: calculation",
    "numerical_solver_error": "Verification: calculation",
    "use_error": "Verification: calculation",
    "model_form": "Validation: computational model",
    "model_inputs": "Validation: computational model",
    "test_samples": "Validation: comparator",
    "test_conditions": "Validation: comparator",
    "equivalency_of_input_parameters": "Validation: assessment",
    "output_comparison": "Validation: assessment",
    "relevance_of_quantities_of_interest": "Applicability",
    "relevance_of_validation_activities": "Applicability",
}

#: Assessment statuses, best first.
STATUSES = ("pass", "partial", "fail", "missing")


class PlanError(CredibilityError):
    """A plan is malformed or cannot be assessed; the message names the file and the key."""


@dataclass(frozen=True)
class Plan:
    """A validated credibility plan.

    Attributes
    ----------
    data : dict
        The plan as read from YAML (schema-validated).
    source : str
        File the plan came from (``"<dict>"`` for in-memory plans).
    model_risk : int
        V&V 40 model risk level 1 … 5 from influence and consequence.
    """

    data: dict[str, Any]
    source: str = "<dict>"
    model_risk: int = field(init=False)

    def __post_init__(self) -> None:
        _validate(self.data, self.source)
        risk = model_risk(self.data["model_influence"], self.data["decision_consequence"])
        stated = self.data.get("model_risk")
        if stated is not None and stated != risk:
            raise PlanError(
                f"{self.source}: key 'model_risk' is {stated}, but influence "
                f"'{self.data['model_influence']}' x consequence "
                f"'{self.data['decision_consequence']}' gives {risk} (V&V 40 risk matrix)"
            )
        object.__setattr__(self, "model_risk", risk)
        for name, factor in self.data["credibility_factors"].items():
            where = f"{self.source}: key 'credibility_factors.{name}"
            _check_evidence_key(factor["evidence"], f"{where}.evidence'")
            _check_partial(factor, f"{where}.partial'")

    @property
    def factors(self) -> dict[str, dict[str, Any]]:
        """The 13 credibility factors, in V&V 40 order."""
        cf = self.data["credibility_factors"]
        return {name: cf[name] for name in CREDIBILITY_FACTORS}

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        """Plan entry ``key`` or ``default``."""
        return self.data.get(key, default)


def _check_evidence_key(key: str, where: str) -> None:
    """The evidence a factor names must be a value the workflow computes (EVIDENCE_KEYS)."""
    entry = evidence_key(key)
    model_defined = (
        entry is not None
        and entry.unit == "model"
        and key.removeprefix(entry.key[:-1]).isidentifier()
    )
    if model_defined:
        return
    if entry is None or entry.key != key:
        raise PlanError(
            f"{where} is '{key}', which is not an evidence key the workflow computes; "
            f"closest: {closest_keys(key)} (every key: credibility.evidence.EVIDENCE_KEYS)"
        )
    if not entry.scalar:
        raise PlanError(
            f"{where} is '{key}', a {entry.unit} ({entry.meaning}), not a value a goal can be "
            f"checked against; closest: {closest_keys(key)}"
        )


def _check_partial(factor: Mapping[str, Any], where: str) -> None:
    """A partial band must be looser than the goal (else 'partial' could beat 'pass')."""
    goal, partial = factor["goal"], factor.get("partial")
    if partial is None:
        return
    if "max" in goal and not ("max" in partial and partial["max"] >= goal["max"]):
        raise PlanError(f"{where}: must have max >= the goal's max {goal['max']}")
    if "min" in goal and not ("min" in partial and partial["min"] <= goal["min"]):
        raise PlanError(f"{where}: must have min <= the goal's min {goal['min']}")
    if ("equals" in goal or "in" in goal) and not ({"equals", "in"} & set(partial)):
        raise PlanError(f"{where}: a goal on equals/in needs a partial band on equals/in")


@cache
def _schema() -> dict[str, Any]:
    with SCHEMA_PATH.open(encoding="utf-8") as fh:
        schema = yaml.safe_load(fh)
    factors = schema["properties"]["credibility_factors"]
    factors["required"] = list(CREDIBILITY_FACTORS)
    factors["properties"] = {name: {"$ref": "#/$defs/factor"} for name in CREDIBILITY_FACTORS}
    return schema


def _validate(data: Any, source: str) -> None:
    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if not errors:
        return
    err = errors[0]
    key = ".".join(str(p) for p in err.absolute_path) or "<top level>"
    allowed = ""
    if err.validator == "enum":
        allowed = f"; allowed: {list(err.validator_value)}"
    elif err.validator == "required":
        allowed = f"; required keys: {list(err.validator_value)}"
    elif err.validator == "additionalProperties":
        props = err.schema.get("properties", {})
        allowed = f"; allowed keys: {sorted(props)}"
    raise PlanError(f"{source}: key '{key}': {err.message}{allowed}")


def load_plan(path: str | Path) -> Plan:
    """Read and validate a credibility plan.

    Parameters
    ----------
    path : str or Path
        YAML file following ``credibility/plan.schema.yaml``.

    Returns
    -------
    Plan
        The validated plan with its model risk.

    Raises
    ------
    PlanError
        If the file cannot be read or parsed, violates the schema (message names the file,
        the dotted key and the allowed values), names an evidence key that is not in
        :data:`credibility.evidence.EVIDENCE_KEYS` (message names the key and the closest
        listed ones), or states a ``model_risk`` that disagrees with the risk matrix.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlanError(f"{path}: cannot read plan: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PlanError(f"{path}: not valid YAML: {exc}") from exc
    return Plan(data=data, source=str(path))


def model_risk(influence: str, consequence: str) -> int:
    """Model risk level from the V&V 40 risk matrix.

    Model influence and decision consequence are each ``low``, ``medium`` or ``high``
    (indices 1, 2, 3); the risk level is ``influence + consequence - 1``, from 1 (low, low)
    to 5 (high, high), as in the 3 x 3 matrix of ASME V&V 40-2018 (Figure 5-2).

    Parameters
    ----------
    influence : {"low", "medium", "high"}
        Contribution of the model to the decision relative to other evidence.
    consequence : {"low", "medium", "high"}
        Severity of an adverse outcome from an incorrect decision.

    Returns
    -------
    int
        Model risk level, 1 … 5.

    Raises
    ------
    PlanError
        If a level is not one of the allowed values.

    Examples
    --------
    >>> model_risk("medium", "high")
    4
    """
    for name, level in (("model_influence", influence), ("decision_consequence", consequence)):
        if level not in LEVELS:
            raise PlanError(f"key '{name}' is {level!r}; allowed: {list(LEVELS)}")
    return LEVELS.index(influence) + LEVELS.index(consequence) + 1


def format_criterion(criterion: Mapping[str, Any] | None) -> str:
    """Human-readable criterion, e.g. ``"≤ 5"``, ``"≥ 0.8"``, ``"= true"``, ``"in {a, b}"``.

    Parameters
    ----------
    criterion : mapping or None
        ``{"min": …, "max": …, "equals": …, "in": […]}`` (any subset).

    Returns
    -------
    str
        Empty string for None.
    """
    if not criterion:
        return ""

    def fmt(v: Any) -> str:
        if isinstance(v, bool):
            return str(v).lower()
        return f"{v:g}" if isinstance(v, float) else str(v)

    parts = []
    if "min" in criterion and "max" in criterion:
        parts.append(f"{fmt(criterion['min'])} … {fmt(criterion['max'])}")
    elif "min" in criterion:
        parts.append(f"≥ {fmt(criterion['min'])}")
    elif "max" in criterion:
        parts.append(f"≤ {fmt(criterion['max'])}")
    if "equals" in criterion:
        parts.append(f"= {fmt(criterion['equals'])}")
    if "in" in criterion:
        parts.append("in {" + ", ".join(fmt(v) for v in criterion["in"]) + "}")
    return " and ".join(parts)


def _meets(value: Any, criterion: Mapping[str, Any], where: str) -> bool:
    numeric = any(k in criterion for k in ("min", "max"))
    if numeric and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise PlanError(
            f"{where}: achieved value {value!r} ({type(value).__name__}) cannot be compared "
            f"with the numeric criterion {format_criterion(criterion)}"
        )
    ok = True
    if "min" in criterion:
        ok &= value >= criterion["min"]
    if "max" in criterion:
        ok &= value <= criterion["max"]
    if "equals" in criterion:
        target = criterion["equals"]
        if isinstance(target, bool) or isinstance(value, bool):
            # true/false match only booleans (1 == True must not pass a boolean goal)
            ok &= isinstance(value, bool) and isinstance(target, bool) and value == target
        else:
            ok &= value == target
    if "in" in criterion:
        ok &= value in criterion["in"]
    return bool(ok)


def assess(plan: Plan | Mapping[str, Any], evidence: Mapping[str, Any]) -> pd.DataFrame:
    """Goal vs achieved for every credibility factor of a plan.

    Status per factor: ``missing`` when the evidence item is absent (or NaN); ``pass`` when
    the achieved value meets the goal; ``partial`` when it misses the goal but meets the
    optional ``partial`` band; ``fail`` otherwise.

    Parameters
    ----------
    plan : Plan or mapping
        A loaded plan, or a plan dict (validated here).
    evidence : mapping
        Nested evidence dict computed by the workflow (keys addressed by the plan's dotted
        ``evidence`` entries).

    Returns
    -------
    pandas.DataFrame
        One row per V&V 40 factor, in standard order, with columns ``factor``, ``activity``,
        ``grade``, ``goal``, ``partial_band``, ``evidence``, ``achieved``, ``status``,
        ``rationale``, ``figure``. ``attrs`` carry ``model_risk`` and the plan ``source``.

    Raises
    ------
    PlanError
        If the plan is invalid, or an achieved value has a type that cannot be compared with
        its criterion (message names the factor and the evidence key).

    Examples
    --------
    >>> p = load_plan(next(Path(__file__).with_name("plans").glob("*.yaml")))
    >>> t = assess(p, {"verification": {"gci_max_pct": 2.0}})
    >>> t.set_index("factor").loc["discretization_error", "status"]
    'pass'
    """
    if not isinstance(plan, Plan):
        plan = Plan(data=dict(plan))
    rows = []
    for name, factor in plan.factors.items():
        key = factor["evidence"]
        where = f"{plan.source}: credibility_factors.{name} (evidence '{key}')"
        value = lookup_evidence(evidence, key)
        if value is None:
            status = "missing"
        elif _meets(value, factor["goal"], where):
            status = "pass"
        elif "partial" in factor and _meets(value, factor["partial"], where):
            status = "partial"
        else:
            status = "fail"
        rows.append(
            {
                "factor": name,
                "activity": CREDIBILITY_FACTORS[name],
                "grade": factor["grade"],
                "goal": format_criterion(factor["goal"]),
                "partial_band": format_criterion(factor.get("partial")),
                "evidence": key,
                "achieved": value,
                "status": status,
                "rationale": factor.get("rationale", ""),
                "figure": factor.get("figure", ""),
            }
        )
    table = pd.DataFrame(rows)
    table.attrs["model_risk"] = plan.model_risk
    table.attrs["source"] = plan.source
    return table
