"""The credibility stage's verification evidence comes from the model's own hooks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from isct.stages.credibility import _verification
from isct.trial import Trial
from models import Model, get_model

REPO_ROOT = Path(__file__).resolve().parents[1]


def config_for(model: str) -> Trial:
    return Trial.from_dict(
        {
            "trial": {"name": "ev"},
            "cohort": {"population": "cohorts/populations/tavr_severe_as.yaml", "n": 10},
            "model": {"name": model},
            "arms": [{"name": "be", "device": {"family": "balloon_expandable"}}]
            if model == "tavr"
            else [{"name": "a", "device": {"eoa_cm2": 1.5}}],
            "endpoints": ["mean_gradient_mmhg"],
            "uncertainty": {"enabled": False},
            "credibility": {"plan": None, "comparators": None, "verification": {"patients": 4}},
        }
    )


@pytest.fixture(scope="module")
def cohort() -> xr.Dataset:
    import cohorts

    spec = cohorts.load_spec(REPO_ROOT / "cohorts" / "populations" / "tavr_severe_as.yaml")
    return cohorts.sample(spec, 10, seed=3)


def test_default_hooks_offer_nothing():
    assert Model().code_verification() is None
    assert Model().time_step_study({}, {}, [1.0], {}) is None
    assert Model.formal_order is None and Model.step_setting is None


def test_tavr_code_verification_is_the_coupled_kernels_order():
    ev = get_model("tavr").code_verification()
    assert ev["formal_order"] == 2.0 and ev["order_error_abs"] < 0.2
    assert "events" in ev["test"]


def test_gci_evidence_for_tavr_is_bounded_and_per_endpoint(cohort):
    evidence, table = _verification(config_for("tavr"), cohort)
    assert evidence["dt_s"] == pytest.approx([4e-3, 2e-3, 1e-3])
    assert evidence["formal_order"] == 2.0
    assert evidence["graded_endpoints"] == ["mean_gradient_mmhg"]
    graded = table[table["endpoint"] == "mean_gradient_mmhg"]
    assert evidence["gci_max_pct"] == pytest.approx(graded["gci_fine_pct"].max())
    assert 0 <= evidence["gci_max_pct"] < 5
    assert {"stroke_volume_ml", "ejection_time_s", "eoa_cm2"} <= set(table["endpoint"])


def test_models_without_a_step_size_get_a_note(cohort):
    evidence, table = _verification(config_for("orifice"), cohort)
    assert table is None and "no discretisation" in evidence["note"]
    assert np.isnan(evidence.get("gci_max_pct", np.nan))
