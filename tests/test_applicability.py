"""Tests of credibility.applicability: the virtual cohort against comparator populations."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import POP_CSV, synthetic_trial

from credibility.applicability import applicability, applicability_summary
from credibility.comparators import load_populations
from credibility.errors import ValidationError


@pytest.fixture
def trial():
    return synthetic_trial()


def test_applicability_overlap_and_smd(trial):
    cohort, _ = trial
    pops = load_populations(POP_CSV)
    table = applicability(cohort, pops["severe_as"], on_missing="skip")
    table = table.set_index("characteristic")
    # the synthetic cohort lacks lvef etc.: kept as rows marked "not in cohort"
    assert table.loc["lvef_pct", "note"] == "not in cohort"
    assert np.isnan(table.loc["lvef_pct", "virtual_mean"])
    assert "annulus_area_mm2[sex=0]" in table.index
    women = cohort["annulus_area_mm2"].values[cohort["sex"].values == 0]
    row = table.loc["annulus_area_mm2[sex=0]"]
    assert row["virtual_mean"] == pytest.approx(women.mean())
    assert row["fraction_within"] == pytest.approx(np.mean((women >= 255) & (women <= 555)))
    sd_v = women.std()
    assert row["smd"] == pytest.approx((women.mean() - 405) / np.sqrt((sd_v**2 + 75**2) / 2))
    age = table.loc["age_yr"]
    a = cohort["age_yr"].values
    assert age["fraction_within"] == pytest.approx(np.mean((a >= 75) & (a <= 85)))


def test_applicability_binary_and_missing_variable(trial):
    cohort, _ = trial
    t = applicability(cohort, {"sex": {"proportion": 0.5, "citation": "x"}})
    p = cohort["sex"].values.mean()
    assert t["smd"].item() == pytest.approx((p - 0.5) / np.sqrt((p * (1 - p) + 0.25) / 2))
    with pytest.raises(ValidationError, match="lvef_pct.*available"):
        applicability(cohort, load_populations(POP_CSV)["severe_as"])


def test_applicability_summary(trial):
    cohort, _ = trial
    app = applicability(cohort, load_populations(POP_CSV)["severe_as"], on_missing="skip")
    a = applicability_summary(app)
    assessed = app[app["note"] == ""]
    assert a["max_abs_smd"] == pytest.approx(assessed["smd"].abs().max())
    assert a["min_fraction_within"] == pytest.approx(assessed["fraction_within"].min())
    assert a["n_not_in_cohort"] == 3  # lvef, svi, heart rate


def test_restrictions_use_the_where_language(trial):
    cohort, _ = trial
    women = cohort["sex"].values == 0
    small = cohort["annulus_area_mm2"].values <= 430
    spec = {"mean": 400.0, "sd": 70.0, "citation": "c", "variable": "annulus_area_mm2"}
    t = applicability(
        cohort,
        {"a": {**spec, "where": "sex=0"}, "b": {**spec, "where": "sex==0 & annulus_area_mm2<=430"}},
    )
    t = t.set_index("characteristic")
    area = cohort["annulus_area_mm2"].values
    assert t.loc["a", "n"] == women.sum()
    assert t.loc["a", "virtual_mean"] == pytest.approx(area[women].mean())
    assert t.loc["b", "n"] == (women & small).sum()
    assert t.loc["b", "virtual_mean"] == pytest.approx(area[women & small].mean())
    with pytest.raises(ValidationError, match=r"'a'.*restriction 'race=1'.*available variables"):
        applicability(cohort, {"a": {**spec, "where": "race=1"}})
    with pytest.raises(ValidationError, match=r"restriction 'sex is 0'.*is not"):
        applicability(cohort, {"a": {**spec, "where": "sex is 0"}})


def test_docstring_examples_run():
    import doctest

    import credibility.applicability as module

    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
