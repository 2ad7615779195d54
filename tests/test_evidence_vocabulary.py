"""Tests of credibility.evidence: the one list of evidence keys, collect_evidence, JSON I/O."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml
from conftest import GOOD, POP_CSV, TAVR_CSV, synthetic_trial

from credibility.applicability import applicability
from credibility.comparators import load_comparators, load_populations
from credibility.evidence import (
    EVIDENCE_KEYS,
    EvidenceError,
    collect_evidence,
    dotted_keys,
    dump_evidence,
    evidence_key,
    load_evidence,
    lookup_evidence,
    unlisted_keys,
)
from credibility.plan import CREDIBILITY_FACTORS, assess, load_plan
from credibility.validation import validate
from credibility.verification import gci
from models import get_model, load_card

REPO = Path(__file__).resolve().parents[1]
PLANS = sorted((REPO / "credibility" / "plans").glob("*.yaml"))


def test_the_list_is_one_documented_table():
    keys = [k.key for k in EVIDENCE_KEYS]
    assert len(keys) == len(set(keys))
    stages = {"cohort", "simulate", "calibrate", "uq", "credibility", "report"}
    for k in EVIDENCE_KEYS:
        assert k.meaning and k.unit and k.stage in stages, k
    assert {k.key.split(".")[0] for k in EVIDENCE_KEYS} == {
        "provenance", "code_verification", "verification", "simulation", "reproducibility",
        "model_card", "uq", "calibration", "validation", "applicability", "cohort",
    }  # fmt: skip


@pytest.mark.parametrize("path", PLANS, ids=lambda p: p.name)
def test_every_key_a_built_in_plan_names_is_listed(path):
    assert PLANS, "no built-in plans"
    factors = yaml.safe_load(path.read_text())["credibility_factors"]
    assert set(factors) == set(CREDIBILITY_FACTORS)
    for name, factor in factors.items():
        entry = evidence_key(factor["evidence"])
        assert entry is not None, name
        # a listed value, or one of the model's own code checks (code_verification.<name>)
        assert (entry.key == factor["evidence"] and entry.scalar) or entry.unit == "model", name
    load_plan(path)


def test_good_evidence_of_the_plan_tests_is_listed():
    assert unlisted_keys(GOOD) == []


def test_collect_evidence_on_real_inputs_produces_only_listed_keys():
    cohort, outcomes = synthetic_trial(300, seed=5)
    model = get_model("tavr")
    study = gci([6.063, 10.78], [5.972, 10.72], [5.863, 10.60], 1.5, (8000 / 4500) ** 0.5)
    link = {"reader": "uq", "writer": "simulate", "path": "outcomes.zarr/x/c/0",
            "kind": "modified", "expected": "a" * 64, "actual": "b" * 64}  # fmt: skip
    ev = collect_evidence(
        verification={**study.summary(), "gci": study.to_frame()},
        code_verification=model.code_verification(),
        validation=validate(
            outcomes, load_comparators(TAVR_CSV), cohort, size_variable="valve_size_mm"
        ),
        applicability=applicability(
            cohort, load_populations(POP_CSV)["severe_as"], on_missing="skip"
        ),
        outcomes=outcomes,
        model_card=load_card(REPO / "models" / "tavr" / "card.yaml", model),
        uq=xr.Dataset(attrs={"problem": "a~normal(mu=1, sigma=0.1); b~uniform(a=0, b=1)"}),
        stage_chain=[link],
        # as isct's report and calibrate stages write them
        reproducibility={
            "resimulation_match": True, "method": "python -m isct verify …", "returncode": 0,
            "error": None, "patients_checked": 2, "arms_checked": 2, "n_differences": 0,
            "manifest_mismatches": 0, "refused": None, "patients": [1, 2], "arms": ["a", "b"],
            "differences": [],
        },
        calibration={
            "enabled": True, "effective_sample_size": 900.0,
            "fit": {"rows": 8, "consistent": 6, "max_abs_error": 1.0},
            "leave_one_study_out": {"rms_z": 0.9, "mean_abs_error": 1.0,
                                    "mean_abs_rel_error_pct": 12.0},
            "model_forms": {"forms": {}, "best": "model", "model_to_best_rms_z_ratio": 1.0},
        },
        # as the cohort stage writes certificate/summary.json
        cohort={
            "matched": True, "table": "t", "method": "weights", "n_targets": 2,
            "n_passed": 2, "all_passed": True, "max_abs_smd": 0.01, "kish_n": 400.0,
        },
        quantities_of_interest=["mean_gradient_mmhg", "eoa_cm2"],
    )  # fmt: skip
    assert unlisted_keys(ev) == []
    assert {k.key.split(".")[0] for k in EVIDENCE_KEYS} == set(ev)  # every piece produced
    produced = {k for k in dotted_keys(ev) if not evidence_key(k).key.endswith(".*")}
    plan_nameable = {k.key for k in EVIDENCE_KEYS if k.scalar}
    # every listed value is produced by these inputs, except alternatives of other producers
    alternatives = {
        "verification.gci_median_pct", "verification.observed_order_median",
        "verification.formal_order", "verification.refinement", "verification.safety_factor",
        "verification.method", "verification.note",  # isct's GCI study, not GCIResult's
    }  # fmt: skip
    assert plan_nameable - produced == alternatives


def test_collect_evidence_refuses_unlisted_keys():
    with pytest.raises(EvidenceError, match=r"'verification.gci_maximum' is not in .*closest"):
        collect_evidence(verification={"gci_maximum": 2.0})
    with pytest.raises(EvidenceError, match=r"'validation.made_up'"):
        collect_evidence(extra={"validation": {"made_up": 1}})
    # a model's own code-verification detail is a listed group
    ev = collect_evidence(code_verification={"order_error_abs": 0.1, "error": {"p": [1.0, 0.5]}})
    assert unlisted_keys(ev) == []
    with pytest.raises(EvidenceError, match="'resimulation_match'"):
        collect_evidence(reproducibility={"patients_checked": 20})


def test_flat_dotted_evidence_keys_and_lookup():
    assert lookup_evidence({"verification.gci_max_pct": 3.0}, "verification.gci_max_pct") == 3.0
    assert lookup_evidence({"a": {"b": np.float64(2.5)}}, "a.b") == 2.5
    assert lookup_evidence({"a": 1}, "a.b") is None


def test_evidence_json_round_trip(tmp_path):
    plan = load_plan(PLANS[0])
    ev = copy.deepcopy(GOOD)
    ev["verification"]["gci_max_pct"] = np.float64(7.0)
    ev["applicability"]["max_abs_smd"] = np.nan
    ev["reproducibility"]["resimulation_match"] = np.bool_(True)
    path = dump_evidence(ev, tmp_path / "evidence" / "evidence.json")
    back = load_evidence(path)
    assert back["applicability"]["max_abs_smd"] is None
    assert assess(plan, back).equals(assess(plan, ev))
    with pytest.raises(EvidenceError, match="evidence key 'x.y'.*ndarray"):
        dump_evidence({"x": {"y": np.zeros(2)}}, tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(EvidenceError, match="JSON object"):
        load_evidence(tmp_path / "list.json")


def test_docstring_examples_run():
    import doctest

    import credibility.evidence as module

    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
