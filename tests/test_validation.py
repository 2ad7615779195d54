"""Tests of credibility.validation, .metrics and .comparators: V&V 20 comparison error, area
metric, exact intervals, comparators and validate()."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import SIZE, STATUS_ATTRS, TAVR_CSV, synthetic_trial
from scipy import stats

from credibility.comparators import (
    ComparatorError,
    load_comparators,
    load_populations,
    parse_where,
    rows_with_role,
)
from credibility.errors import ValidationError
from credibility.metrics import area_metric, comparison_error
from credibility.statistics import proportion_interval
from credibility.validation import validate, validation_summary


@pytest.fixture
def trial():
    return synthetic_trial()


# ------------------------------------------------------------------ comparison error (V&V 20)


def test_comparison_error_known_answer_and_vectorised():
    ce = comparison_error([10.0, 8.0], 8.6, u_num=0.3, u_input=0.4, u_D=[1.2, 0.0])
    np.testing.assert_allclose(ce.E, [1.4, -0.6])
    np.testing.assert_allclose(ce.u_val, [np.sqrt(0.09 + 0.16 + 1.44), 0.5])
    np.testing.assert_allclose(ce.lower, ce.E - 2 * ce.u_val)
    assert list(ce.consistent) == [True, True]
    assert not comparison_error(10.0, 8.6, u_num=0.1).consistent
    with pytest.raises(ValidationError, match="u_D"):
        comparison_error(1.0, 1.0, u_D=-1.0)


# ------------------------------------------------------------------------------ area metric


def test_area_metric_point_mass_against_normal_is_mean_absolute_deviation():
    # Point prediction at mu vs N(mu, sigma): area = E|X - mu| = sigma sqrt(2/pi).
    assert area_metric([3.0], stats.norm(3.0, 2.0)) == pytest.approx(
        2 * np.sqrt(2 / np.pi), rel=1e-6
    )
    # off-centre point a: E|X - a| = sigma [2 phi(z) + z (2 Phi(z) - 1)], z = (a - mu) / sigma
    z = 0.7
    expected = 2.0 * (2 * stats.norm.pdf(z) + z * (2 * stats.norm.cdf(z) - 1))
    assert area_metric([3.0 + 2.0 * z], stats.norm(3.0, 2.0)) == pytest.approx(expected, rel=1e-6)


def test_area_metric_shifted_distributions_equals_shift():
    # quantile-stratified samples of N(0,1) against N(0.5,1): area between CDFs -> 0.5
    u = (np.arange(20000) + 0.5) / 20000
    pred = stats.norm.ppf(u)
    assert area_metric(pred, stats.norm(0.5, 1.0)) == pytest.approx(0.5, abs=2e-3)
    # plain CDF callable with support
    cdf = stats.norm(0.5, 1.0).cdf
    assert area_metric(pred, cdf, support=(-9, 9)) == pytest.approx(0.5, abs=2e-3)
    with pytest.raises(ValidationError, match="support"):
        area_metric(pred, cdf)
    # a published mean ± SD as a mapping
    assert area_metric(pred, {"mean": 0.5, "sd": 1.0}) == pytest.approx(0.5, abs=2e-3)
    with pytest.raises(ValidationError, match="'sd' > 0"):
        area_metric(pred, {"mean": 0.5})


def test_area_metric_samples_matches_weighted_wasserstein():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 300), rng.normal(0.3, 1.5, 200)
    wa, wb = rng.uniform(0.5, 2, 300), rng.uniform(0.5, 2, 200)
    got = area_metric(a, b, pred_weights=wa, obs_weights=wb)
    assert got == pytest.approx(stats.wasserstein_distance(a, b, wa, wb), rel=1e-10)
    assert area_metric(a, a) == 0.0
    # weights duplicate samples: weight 2 on a sample == the sample twice
    assert area_metric([1.0, 2.0], [1.0, 1.0, 2.0], pred_weights=[2, 1]) == pytest.approx(0.0)


# ----------------------------------------------------------------------- Clopper-Pearson


def test_clopper_pearson_known_values():
    lo, hi = proportion_interval([0, 5, 10], 10)
    # k = 0: upper = 1 - (alpha/2)^(1/n); k = n: lower = (alpha/2)^(1/n)
    np.testing.assert_allclose(hi[0], 1 - 0.025 ** (1 / 10))
    np.testing.assert_allclose(lo[2], 0.025 ** (1 / 10))
    assert lo[0] == 0.0 and hi[2] == 1.0
    # k = 5, n = 10: (0.1871, 0.8129), standard table value
    np.testing.assert_allclose([lo[1], hi[1]], [0.187086, 0.812914], atol=1e-6)
    lo99, hi99 = proportion_interval(5, 10, conf=0.99)
    assert lo99 < lo[1] and hi99 > hi[1]
    with pytest.raises(ValidationError, match="0 <= k <= n"):
        proportion_interval(11, 10)
    with pytest.raises(ValidationError, match="conf"):
        proportion_interval(1, 10, conf=1.5)


# ------------------------------------------------------------------------------ comparators


def test_tavr_comparators_load_with_roles_time_points_and_citations():
    df = load_comparators(TAVR_CSV)
    assert df["citation"].str.len().min() > 10
    assert set(df["role"]) == {"calibration", "validation"}
    assert df["timepoint_days"].notna().all()
    # every study gives its n but the guideline's pooled reference values
    assert set(df.loc[df["n"].isna(), "study"]) == {"ASE 2024 reference values"}
    t = df.set_index("id")
    assert t.loc["partner3_ppm_severe_30d", "value"] == pytest.approx(0.046)
    assert t.loc["partner3_ppm_severe_30d", "unit"] == "fraction"
    assert t.loc["smart_ppm_modsev_be_30d", "category"] == "1|2"
    assert t.loc["smart_hg_be_1y", "threshold"] == ">=20"
    assert t.loc["bern_ppm_moderate", "role"] == "calibration"
    # the per-size reference rows are validation rows: the model never fits them
    per_size = df[df["study"] == "ASE 2024 reference values"]
    assert len(per_size) == 16 and (per_size["role"] == "validation").all()
    assert len(rows_with_role(df, "calibration")) == 8


def _write(tmp_path, text):
    p = tmp_path / "c.csv"
    p.write_text(text)
    return p


HEADER = "id,study,role,quantity,statistic,category,arm,value,unit,timepoint_days,citation\n"


def test_comparator_without_citation_names_file_and_row(tmp_path):
    p = _write(
        tmp_path,
        "# comment\n" + HEADER + "a,S,validation,eoa_cm2,mean,,self_expanding,2.3,cm2,30,Trial\n"
        "b,S,validation,eoa_cm2,mean,,self_expanding,2.1,cm2,30,\n",
    )
    with pytest.raises(ComparatorError, match=r"c\.csv: row 4 \(id=b\): column 'citation'"):
        load_comparators(p)


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("a,S,validation,eoa_cm2,average,,x,2.3,cm2,30,cit", r"allowed: \['mean', 'median', 'sd'"),
        ("a,S,validation,eoa_cm2,mean,,x,two,cm2,30,cit", "column 'value' is 'two', not a number"),
        ("a,S,validation,ppm_class,proportion,,x,4.6,%,30,cit", "'category' is empty and so is"),
        (
            "a,S,validation,ppm_class,proportion,2,x,4.6,percent,30,cit",
            r"allowed: \['%', 'fraction'\]",
        ),
        (
            "a,S,training,eoa_cm2,mean,,x,2.3,cm2,30,cit",
            r"'role' is 'training'; allowed: \['calibration'",
        ),
        ("a,S,validation,eoa_cm2,mean,,x,2.3,cm2,,cit", "column 'timepoint_days' is empty"),
        ("a,S,validation,ppm_class,proportion,two,x,4.6,%,30,cit", "integer codes separated by"),
    ],
)
def test_comparator_errors(tmp_path, line, match):
    with pytest.raises(ComparatorError, match=match):
        load_comparators(_write(tmp_path, HEADER + line + "\n"))


def test_comparator_missing_column_and_bad_where(tmp_path):
    with pytest.raises(ComparatorError, match="missing required column"):
        load_comparators(_write(tmp_path, "id,quantity\na,b\n"))
    head = HEADER.replace("citation", "where,citation")
    with pytest.raises(ComparatorError, match="column 'where'.*'area ~ 3'"):
        load_comparators(
            _write(tmp_path, head + "a,S,validation,eoa_cm2,mean,,x,2.3,cm2,30,area ~ 3,cit\n")
        )


def test_where_selections_parse_and_combine():
    assert parse_where("") == []
    assert parse_where("a<=1 & b==0 | c>2") == [
        [("a", "<=", 1.0), ("b", "==", 0.0)],
        [("c", ">", 2.0)],
    ]
    with pytest.raises(ValueError, match="is not"):
        parse_where("a in 3")


# ------------------------------------------------------------------------------- validate


def test_validate_known_answer_against_direct_computation(trial):
    cohort, outcomes = trial
    comps = load_comparators(TAVR_CSV)
    table = validate(outcomes, comps, cohort, size_variable=SIZE)
    assert len(table) == (comps["role"] == "validation").sum()
    t = table.set_index("id")
    # mean gradient, self-expanding arm, over status == 0 only
    se = outcomes.sel(arm="self_expanding")
    g = se["mean_gradient_mmhg"].values[se["status"].values == 0]
    assert t.loc["evolut_lr_mg_1y", "predicted"] == pytest.approx(g.mean())
    assert t.loc["evolut_lr_mg_1y", "n_virtual"] == g.size == 399
    half = stats.t.ppf(0.975, g.size - 1) * g.std(ddof=1) / np.sqrt(g.size)
    assert t.loc["evolut_lr_mg_1y", "predicted_high"] == pytest.approx(g.mean() + half)
    assert t.loc["evolut_lr_mg_1y", "E"] == pytest.approx(g.mean() - 8.6)
    # severe PPM, balloon-expandable: proportion with exact interval
    be = outcomes.sel(arm="balloon_expandable")
    ppm = be["ppm_class"].values[be["status"].values == 0]
    k = int((ppm == 2).sum())
    assert t.loc["partner3_ppm_severe_30d", "predicted"] == pytest.approx(k / ppm.size)
    lo, hi = proportion_interval(k, ppm.size)
    assert t.loc["partner3_ppm_severe_30d", "predicted_low"] == pytest.approx(float(lo))
    assert t.loc["partner3_ppm_severe_30d", "predicted_high"] == pytest.approx(float(hi))
    # pooled proportion uses both arms
    both = outcomes["ppm_class"].values[outcomes["status"].values == 0]
    assert t.loc["tvt_ppm_severe", "predicted"] == pytest.approx((both == 2).mean())
    # by-size row restricted to the valve size, with its spread compared
    sizes = be["valve_size_mm"].values
    m = (be["status"].values == 0) & (sizes == 26)
    x = be["eoa_cm2"].values[m]
    assert t.loc["ase_eoa_s3_26", "predicted"] == pytest.approx(x.mean())
    assert t.loc["ase_eoa_s3_26", "predicted_sd"] == pytest.approx(x.std(ddof=1))
    assert t.loc["ase_eoa_s3_26", "sd_verdict"] in ("consistent", "inconsistent")
    # a where-selection (annulus band) and a threshold event
    small = cohort["annulus_area_mm2"].values <= 430
    m = (be["status"].values == 0) & small
    hg = (be["mean_gradient_mmhg"].values[m] >= 20).mean()
    assert t.loc["smart_hg_be_1y", "predicted"] == pytest.approx(hg)
    # moderate or severe: two class codes
    ms = np.isin(be["ppm_class"].values[m], [1, 2]).mean()
    assert t.loc["smart_ppm_modsev_be_30d", "predicted"] == pytest.approx(ms)
    assert set(table["verdict"]) <= {"consistent", "inconsistent", "no prediction"}
    summary = validation_summary(table)
    assert summary["n_comparators"] == len(table)
    assert 0.0 <= summary["fraction_consistent"] <= 1.0


def test_a_calibration_row_never_enters_validation(trial, tmp_path):
    cohort, outcomes = trial
    comps = load_comparators(TAVR_CSV)
    calibration_ids = set(comps.loc[comps["role"] == "calibration", "id"])
    table = validate(outcomes, comps, cohort, size_variable=SIZE)
    assert calibration_ids and not calibration_ids & set(table["id"])
    assert (table["role"] == "validation").all()
    # the calibrate stage asks for its own rows explicitly
    cal = validate(outcomes, comps, cohort, role="calibration", size_variable=SIZE)
    assert set(cal["id"]) == calibration_ids
    # and a table holding a calibration row is refused as validation evidence
    with pytest.raises(ValidationError, match="calibration data never count as validation"):
        validation_summary(pd.concat([table, cal]))


def test_time_points_the_model_cannot_predict_are_excluded_with_the_reason(trial):
    cohort, outcomes = trial
    comps = load_comparators(TAVR_CSV)

    def at(days):
        return outcomes if days <= 400 else f"no prediction at {days:.0f} days"

    table = validate(outcomes, comps, cohort, at_timepoint=at, size_variable=SIZE)
    table = table.set_index("id")
    assert table.loc["partner3_mg_5y", "verdict"] == "excluded"
    assert table.loc["partner3_mg_5y", "note"] == "no prediction at 1825 days"
    assert table.loc["smart_women_mg_be_2y", "verdict"] == "excluded"
    assert table.loc["partner3_mg_1y", "verdict"] != "excluded"
    s = validation_summary(table.reset_index())
    assert s["n_excluded"] == (table["verdict"] == "excluded").sum() > 0
    assert s["n_comparators"] == len(table) - s["n_excluded"]


def test_changing_a_comparator_figure_changes_the_verdict(trial, tmp_path):
    cohort, outcomes = trial
    se = outcomes.sel(arm="self_expanding")
    g = se["mean_gradient_mmhg"].values[se["status"].values == 0]
    head = "id,study,role,quantity,statistic,arm,value,sd,n,unit,timepoint_days,citation\n"
    close = (
        f"x,S,validation,mean_gradient_mmhg,mean,self_expanding,{g.mean():.4f},3.0,100,mmHg,30,c\n"
    )
    far = f"x,S,validation,mean_gradient_mmhg,mean,self_expanding,{g.mean() + 5:.4f},3.0,100,mmHg,30,c\n"
    t1 = validate(outcomes, load_comparators(_write(tmp_path, head + close)), cohort)
    t2 = validate(outcomes, load_comparators(_write(tmp_path, head + far)), cohort)
    assert t1["verdict"].item() == "consistent"
    assert t2["verdict"].item() == "inconsistent"
    assert t1["u_D"].item() == pytest.approx(0.3)
    assert (
        np.isfinite(t1["area_metric"].item())
        and t2["area_metric"].item() > t1["area_metric"].item()
    )
    # u_input from UQ widens u_val and can turn the verdict
    t3 = validate(
        outcomes,
        load_comparators(_write(tmp_path, head + far)),
        cohort,
        u_input={"mean_gradient_mmhg": 5.0},
    )
    assert t3["verdict"].item() == "consistent"
    # a published spread far from the virtual one fails the distribution check
    wide = close.replace(",3.0,100,", ",30.0,100,")
    t4 = validate(outcomes, load_comparators(_write(tmp_path, head + wide)), cohort)
    assert t4["sd_verdict"].item() == "inconsistent" and t1["predicted_sd"].item() > 0


def test_sampling_weights_change_prediction(trial):
    cohort, outcomes = trial
    comps = load_comparators(TAVR_CSV)
    w = cohort["sampling_weight"].copy(data=np.where(cohort["sex"].values == 1, 3.0, 1.0))
    t_eq = validate(outcomes, comps, cohort, size_variable=SIZE).set_index("id")
    t_w = validate(outcomes, comps, cohort.assign(sampling_weight=w), size_variable=SIZE)
    t_w = t_w.set_index("id")
    se = outcomes.sel(arm="self_expanding")
    ok = se["status"].values == 0
    expected = np.average(se["eoa_cm2"].values[ok], weights=w.values[ok])
    assert t_w.loc["evolut_lr_eoa_1y", "predicted"] == pytest.approx(expected)
    assert t_w.loc["evolut_lr_eoa_1y", "predicted"] != t_eq.loc["evolut_lr_eoa_1y", "predicted"]
    assert t_w.loc["evolut_lr_eoa_1y", "n_effective"] < t_eq.loc["evolut_lr_eoa_1y", "n_effective"]


def test_validate_errors_name_comparator_and_allowed_values(trial, tmp_path):
    cohort, outcomes = trial
    row = "z,S,validation,{q},mean,,{arm},2.0,{u},30,c\n"
    bad_arm = load_comparators(
        _write(tmp_path, HEADER + row.format(q="eoa_cm2", arm="tavi", u="cm2"))
    )
    with pytest.raises(ValidationError, match=r"id=z.*'tavi'.*self_expanding.*pooled"):
        validate(outcomes, bad_arm)
    bad_q = load_comparators(
        _write(tmp_path, HEADER + row.format(q="eoa_mm2", arm="pooled", u="cm2"))
    )
    with pytest.raises(ValidationError, match="eoa_mm2.*available"):
        validate(outcomes, bad_q)
    bad_u = load_comparators(
        _write(tmp_path, HEADER + row.format(q="eoa_cm2", arm="pooled", u="mm2"))
    )
    with pytest.raises(ValidationError, match="unit 'mm2' differs"):
        validate(outcomes, bad_u)
    head = HEADER.replace("citation", "where,citation")
    bad_where = load_comparators(
        _write(tmp_path, head + "z,S,validation,eoa_cm2,mean,,pooled,2.0,cm2,30,lvot_mm<3,c\n")
    )
    with pytest.raises(ValidationError, match="'lvot_mm'; available variables"):
        validate(outcomes, bad_where, cohort)


def test_lesion_level_rows_select_lesions_and_broadcast_patient_variables(tmp_path):
    """Known answer on a synthetic (arm, patient, lesion) outcome: a `where` on a lesion-level
    output selects lesions; patient-level outputs, cohort variables and weights are broadcast
    along the lesion dim; absent slots (NaN) and failed patients are dropped."""
    nan = np.nan
    ffr = np.array(
        [
            [[0.70, 0.90, nan], [0.75, 0.85, 0.60], [0.50, nan, nan], [0.95, 0.80, nan]],
            [[0.65, 0.88, nan], [0.70, 0.82, 0.55], [0.45, nan, nan], [0.93, 0.78, nan]],
        ]
    )
    ds_read = np.array(
        [[[60.0, 45.0, nan], [80.0, 55.0, 92.0], [95.0, nan, nan], [52.0, 71.0, nan]]] * 2
    )
    n_vessels = np.array([[2, 3, 1, 2]] * 2, dtype=np.int16)  # patient level
    status = np.zeros((2, 4), dtype=np.int8)
    status[1, 3] = 2  # patient 3 failed in arm b
    outcomes = xr.Dataset(
        {
            "ffr": (("arm", "patient", "lesion"), ffr, {"units": "1"}),
            "ds_visual_pct": (("arm", "patient", "lesion"), ds_read, {"units": "%"}),
            "n_vessels": (("arm", "patient"), n_vessels, {"units": "1"}),
            "status": (("arm", "patient"), status, STATUS_ATTRS),
        },
        coords={"arm": ["a", "b"], "patient": np.arange(4), "lesion": np.arange(3)},
    )
    cohort = xr.Dataset(
        {
            "age_yr": ("patient", np.array([70.0, 55.0, 80.0, 64.0])),
            "sampling_weight": ("patient", np.array([1.0, 2.0, 1.0, 0.5])),
        },
        coords={"patient": np.arange(4)},
    )
    head = HEADER.replace("category", "category,threshold").replace("citation", "where,citation")
    rows = [
        # lesions read 50-70 % of patients with >= 2 arteries: p0 l0 (FFR 0.70, weight 1),
        # p1 l1 (0.85, weight 2), p3 l0 (0.95, weight 0.5); p2 has one artery
        "band,S,validation,ffr,proportion,,<=0.80,a,50,%,0,"
        "ds_visual_pct>=50 & ds_visual_pct<=70 & n_vessels>=2,c",
        # lesions of patients aged >= 60 in arm b: p0 (0.65, 0.88), p2 (0.45); p3 failed
        "old,S,validation,ffr,mean,,,b,0.7,1,0,age_yr>=60,c",
        # patient-level quantity with a patient-level where: one row per patient
        "mvd,S,validation,n_vessels,proportion,,>=2,a,50,%,0,age_yr>=60,c",
    ]
    comps = load_comparators(_write(tmp_path, head + "\n".join(rows) + "\n"))
    t = validate(outcomes, comps, cohort).set_index("id")
    # band: FFR <= 0.80 only for p0's lesion -> 1 / (1 + 2 + 0.5)
    assert t.loc["band", "n_virtual"] == 3
    assert t.loc["band", "predicted"] == pytest.approx(1.0 / 3.5)
    # old: weighted mean of 0.65, 0.88 (weight 1 each) and 0.45 (weight 1)
    assert t.loc["old", "n_virtual"] == 3
    assert t.loc["old", "predicted"] == pytest.approx((0.65 + 0.88 + 0.45) / 3)
    # mvd: patients 0, 2, 3 are >= 60; n_vessels >= 2 for p0 (w 1) and p3 (w 0.5), not p2
    assert t.loc["mvd", "n_virtual"] == 3
    assert t.loc["mvd", "predicted"] == pytest.approx(1.5 / 2.5)
    # a row mixing two different extra dims cannot broadcast
    outcomes["wave"] = (("arm", "patient", "time"), np.zeros((2, 4, 5)))
    mixed = load_comparators(
        _write(tmp_path, head + "m,S,validation,ffr,mean,,,a,0.7,1,0,wave>=0,c\n")
    )
    with pytest.raises(ValidationError, match="different extra dims"):
        validate(outcomes, mixed, cohort)


def test_population_file_errors(tmp_path):
    p = tmp_path / "p.csv"
    p.write_text("population,variable,mean,citation\nx,age_yr,,c\n")
    with pytest.raises(ComparatorError, match="row 2: give at least one"):
        load_populations(p)
    p.write_text("population,variable,mean,citation\nx,age_yr,70,\n")
    with pytest.raises(ComparatorError, match="column 'citation' is empty"):
        load_populations(p)


def test_population_where_must_parse(tmp_path):
    p = tmp_path / "p.csv"
    p.write_text("population,variable,mean,where,citation\nx,age_yr,70,sex ~ 0,c\n")
    with pytest.raises(ComparatorError, match=r"row 2: column 'where'.*'sex ~ 0'"):
        load_populations(p)


def test_validation_summary(trial):
    cohort, outcomes = trial
    table = validate(outcomes, load_comparators(TAVR_CSV), cohort, size_variable=SIZE)
    s = validation_summary(
        table, ["mean_gradient_mmhg", "eoa_cm2", "ppm_class", "stroke_volume_ml"]
    )
    strata = {
        (a, sz if np.isfinite(sz) else -1.0, w if isinstance(w, str) else "")
        for a, sz, w in zip(table["arm"], table["size_mm"], table["where"], strict=True)
    }
    assert s["n_strata"] == len(strata) > 10
    assert s["qoi_coverage"] == 0.75
    has = table["verdict"] != "no prediction"
    assert s["fraction_consistent"] == pytest.approx(
        (table.loc[has, "verdict"] == "consistent").mean()
    )
    assert 0 < s["fraction_with_u_D"] < 1
    assert s["n_studies"] == table["study"].nunique()
    assert s["n_patients"] == pytest.approx(table.groupby("study")["n"].max().sum())
    assert np.isnan(validation_summary(table)["qoi_coverage"])


def test_size_rows_need_the_size_variable(trial, tmp_path):
    cohort, outcomes = trial
    head = HEADER.replace("citation", "size_mm,citation")
    rows = load_comparators(
        _write(tmp_path, head + "s,S,validation,eoa_cm2,mean,,self_expanding,2.0,cm2,30,26,c\n")
    )
    with pytest.raises(ValidationError, match=r"id=s: size_mm is 26 but no size_variable"):
        validate(outcomes, rows, cohort)
    with pytest.raises(ValidationError, match=r"id=s: .*lack size_variable 'size'.*available"):
        validate(outcomes, rows, cohort, size_variable="size")
    # the size variable selects the patients: any outcome variable may be the device size
    renamed = outcomes.rename({"valve_size_mm": "device_size"})
    t = validate(renamed, rows, cohort, size_variable="device_size")
    se = outcomes.sel(arm="self_expanding")
    m = (se["status"].values == 0) & (se["valve_size_mm"].values == 26)
    assert t["predicted"].item() == pytest.approx(se["eoa_cm2"].values[m].mean())
    assert t["n_virtual"].item() == m.sum()
    # rows without a size need no size variable
    no_size = load_comparators(
        _write(tmp_path, HEADER + "z,S,validation,eoa_cm2,mean,,pooled,2.0,cm2,30,c\n")
    )
    assert len(validate(renamed, no_size, cohort)) == 1


@pytest.mark.parametrize(
    "name", ["credibility.metrics", "credibility.statistics", "credibility.comparators"]
)
def test_docstring_examples_run(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
