"""Tests of credibility.plan: schema, V&V 40 risk matrix, goal-vs-achieved assessment."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import yaml
from conftest import GOOD, PLAN

from credibility.plan import (
    CREDIBILITY_FACTORS,
    Plan,
    PlanError,
    assess,
    format_criterion,
    load_plan,
    model_risk,
)


@pytest.fixture
def plan():
    return load_plan(PLAN)


@pytest.fixture
def plan_dict():
    return yaml.safe_load(PLAN.read_text())


def test_risk_matrix_all_nine_cells():
    # ASME V&V 40-2018 Fig. 5-2: rows consequence, columns influence.
    expected = {
        ("low", "low"): 1, ("medium", "low"): 2, ("high", "low"): 3,
        ("low", "medium"): 2, ("medium", "medium"): 3, ("high", "medium"): 4,
        ("low", "high"): 3, ("medium", "high"): 4, ("high", "high"): 5,
    }  # fmt: skip
    for (influence, consequence), risk in expected.items():
        assert model_risk(influence, consequence) == risk
    with pytest.raises(PlanError, match=r"model_influence.*'huge'.*\['low', 'medium', 'high'\]"):
        model_risk("huge", "low")


def test_default_plan_has_all_13_factors_and_risk(plan):
    assert plan.model_risk == 3
    assert list(plan.factors) == list(CREDIBILITY_FACTORS)
    assert len(CREDIBILITY_FACTORS) == 13


def test_all_goals_met_pass_and_status_per_factor(plan):
    table = assess(plan, GOOD)
    assert list(table["factor"]) == list(CREDIBILITY_FACTORS)
    assert (table["status"] == "pass").all(), table[["factor", "status"]]
    assert table.attrs["model_risk"] == 3
    row = table.set_index("factor").loc["discretization_error"]
    assert row["goal"] == "≤ 5" and row["partial_band"] == "≤ 10"
    assert row["achieved"] == 1.2 and row["evidence"] == "verification.gci_max_pct"


@pytest.mark.parametrize(
    ("value", "status"), [(4.99, "pass"), (5.0, "pass"), (7.5, "partial"), (10.5, "fail")]
)
def test_changing_evidence_changes_status(plan, value, status):
    ev = copy.deepcopy(GOOD)
    ev["verification"]["gci_max_pct"] = value
    table = assess(plan, ev).set_index("factor")
    assert table.loc["discretization_error", "status"] == status
    assert (table.drop(index="discretization_error")["status"] == "pass").all()


def test_changing_goal_threshold_changes_status(plan_dict):
    ev = copy.deepcopy(GOOD)
    ev["verification"]["gci_max_pct"] = 3.0
    assert assess(plan_dict, ev).set_index("factor").loc["discretization_error", "status"] == "pass"
    plan_dict["credibility_factors"]["discretization_error"]["goal"] = {"max": 2.0}
    plan_dict["credibility_factors"]["discretization_error"]["partial"] = {"max": 2.5}
    t = assess(plan_dict, ev).set_index("factor")
    assert t.loc["discretization_error", "status"] == "fail"
    assert t.loc["discretization_error", "goal"] == "≤ 2"


def test_missing_nan_and_boolean_evidence(plan):
    ev = copy.deepcopy(GOOD)
    del ev["calibration"]["leave_one_study_out"]
    ev["cohort"]["fraction_passed"] = np.nan
    ev["reproducibility"]["resimulation_match"] = np.bool_(False)
    t = assess(plan, ev).set_index("factor")
    assert t.loc["model_inputs", "status"] == "missing"
    assert t.loc["equivalency_of_input_parameters", "status"] == "missing"
    assert t.loc["use_error", "status"] == "fail"
    # 1 is not True for a boolean goal
    ev["reproducibility"]["resimulation_match"] = 1
    assert assess(plan, ev).set_index("factor").loc["use_error", "status"] == "fail"
    assert assess(plan, {}).status.eq("missing").all()


def test_type_mismatch_names_factor_and_key(plan):
    ev = copy.deepcopy(GOOD)
    ev["verification"]["gci_max_pct"] = "small"
    with pytest.raises(
        PlanError, match=r"discretization_error \(evidence 'verification.gci_max_pct'\)"
    ):
        assess(plan, ev)


def test_format_criterion():
    assert format_criterion({"min": 0.8}) == "≥ 0.8"
    assert format_criterion({"min": 1, "max": 3}) == "1 … 3"
    assert format_criterion({"equals": True}) == "= true"
    assert format_criterion({"in": ["a", "b"]}) == "in {a, b}"
    assert format_criterion(None) == ""


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: d.__setitem__("model_influence", "huge"),
         r"key 'model_influence'.*allowed: \['low', 'medium', 'high'\]"),
        (lambda d: d["credibility_factors"].pop("model_form"),
         r"key 'credibility_factors'.*'model_form' is a required property"),
        (lambda d: d["credibility_factors"]["use_error"].__setitem__("goal", {"atleast": 1}),
         r"key 'credibility_factors.use_error.goal'"),
        (lambda d: d["credibility_factors"]["use_error"].__setitem__("evidence", "a..b"),
         r"key 'credibility_factors.use_error.evidence'"),
        (lambda d: d.__setitem__("model_risk", 5),
         r"key 'model_risk' is 5.*gives 3"),
        (lambda d: d.__setitem__("colour", "red"),
         r"key '<top level>'.*colour.*allowed keys"),
        (lambda d: d["credibility_factors"]["discretization_error"].__setitem__(
            "partial", {"max": 2.0}),
         r"key 'credibility_factors.discretization_error.partial': must have max >= .* 5"),
        (lambda d: d["credibility_factors"]["output_comparison"].__setitem__(
            "partial", {"max": 0.9}),
         r"key 'credibility_factors.output_comparison.partial': must have min <="),
    ],
)  # fmt: skip
def test_plan_errors_name_file_key_and_allowed_values(tmp_path, plan_dict, mutate, match):
    mutate(plan_dict)
    path = tmp_path / "bad_plan.yaml"
    path.write_text(yaml.safe_dump(plan_dict))
    with pytest.raises(PlanError, match="bad_plan.yaml") as info:
        load_plan(path)
    assert info.match(match)


def test_unreadable_and_invalid_yaml(tmp_path):
    with pytest.raises(PlanError, match="cannot read"):
        load_plan(tmp_path / "nope.yaml")
    bad = tmp_path / "x.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(PlanError, match="x.yaml: not valid YAML"):
        load_plan(bad)


def test_plan_from_dict(plan_dict):
    p = Plan(data=plan_dict)
    assert p.source == "<dict>" and p["name"] == "tavr_small_annuli"


def test_docstring_examples_run():
    import doctest

    import credibility.plan as module

    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize(
    ("key", "match"),
    [
        ("verification.gci_maximum_pct",
         r"is 'verification.gci_maximum_pct', which is not an evidence key the workflow "
         r"computes; closest: \['verification.gci_max_pct'"),
        ("provenance.stage_chain", r"is 'provenance.stage_chain', a table"),
        ("code_verification.cases.relative_error", r"not an evidence key the workflow computes"),
        ("solver.relative_error", r"not an evidence key the workflow computes"),
    ],
)  # fmt: skip
def test_a_plan_naming_an_unlisted_evidence_key_is_refused(tmp_path, plan_dict, key, match):
    plan_dict["credibility_factors"]["discretization_error"]["evidence"] = key
    path = tmp_path / "tampered_plan.yaml"
    path.write_text(yaml.safe_dump(plan_dict))
    with pytest.raises(
        PlanError, match=r"tampered_plan\.yaml: key 'credibility_factors.discretization_error"
    ) as info:
        load_plan(path)
    assert info.match(match)
    with pytest.raises(PlanError, match=match):
        assess(plan_dict, GOOD)  # an in-memory plan is checked alike


def test_a_model_defined_code_check_can_be_named_and_fails_when_not_reported(plan_dict):
    """``code_verification.<name>``: the model's own check; absent evidence is not a pass."""
    factor = plan_dict["credibility_factors"]["numerical_code_verification"]
    factor.update(evidence="code_verification.analytic_rel_error", goal={"max": 1e-12})
    factor.pop("partial", None)
    status = assess(plan_dict, GOOD).set_index("factor")["status"]
    assert status["numerical_code_verification"] == "missing"  # not reported: not met
    reported = {
        **GOOD,
        "code_verification": {**GOOD["code_verification"], "analytic_rel_error": 1e-15},
    }
    status = assess(plan_dict, reported).set_index("factor")["status"]
    assert status["numerical_code_verification"] == "pass"
    reported["code_verification"]["analytic_rel_error"] = 1e-9
    status = assess(plan_dict, reported).set_index("factor")["status"]
    assert status["numerical_code_verification"] == "fail"


def test_a_cohort_outside_the_enrolled_populations_table_fails_equivalency(plan):
    ev = copy.deepcopy(GOOD)
    assert (
        assess(plan, ev).set_index("factor").loc["equivalency_of_input_parameters", "status"]
        == "pass"
    )
    ev["cohort"]["fraction_passed"] = 0.5  # one of two baseline figures outside its interval
    status = assess(plan, ev).set_index("factor").loc["equivalency_of_input_parameters", "status"]
    assert status == "partial"
    ev["cohort"]["fraction_passed"] = 0.0
    status = assess(plan, ev).set_index("factor").loc["equivalency_of_input_parameters", "status"]
    assert status == "fail"
