"""Tests of matching a cohort to a published baseline table: target tables and their
sampling intervals, entropy balancing (known answers: exponential tilting, raking),
acceptance-rejection selection, spec refitting, infeasible targets, the certificate and its
energy-distance check, and ``isct cohort --match``."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml
from scipy import optimize, stats

import cohorts
from cohorts import intervals
from cohorts.balance import entropy_balance
from cohorts.certificate import CERTIFICATE_COLUMNS
from cohorts.energy import energy_test
from isct.cli import main


def _var(dist):
    return {"long_name": "test variable", "units": "1", "source": "test", "distribution": dist}


def _population() -> dict:
    """A small adult population: sex, age, height and weight by sex (correlated), BMI."""
    return {
        "name": "adults",
        "variables": {
            "sex": _var(
                {
                    "type": "categorical",
                    "categories": ["female", "male"],
                    "probabilities": [0.5, 0.5],
                }
            ),
            "age_yr": {
                **_var({"type": "truncnorm", "mean": 75, "sd": 8, "lower": 50, "upper": 95}),
                "units": "yr",
            },
            "height_cm": {
                **_var(
                    {
                        "female": {"type": "normal", "mean": 162, "sd": 7},
                        "male": {"type": "normal", "mean": 175, "sd": 7},
                    }
                ),
                "given": "sex",
                "units": "cm",
            },
            "weight_kg": {
                **_var(
                    {
                        "female": {"type": "lognormal", "mean": 72, "sd": 13},
                        "male": {"type": "lognormal", "mean": 85, "sd": 14},
                    }
                ),
                "given": "sex",
                "units": "kg",
            },
        },
        "derived": {
            "bmi_kg_m2": {
                "expr": "weight_kg / (height_cm / 100) ** 2",
                "long_name": "body mass index",
                "units": "kg m-2",
                "source": "definition",
            }
        },
        "copula": [
            {
                "variables": ["height_cm", "weight_kg"],
                "given": "sex",
                "kind": "spearman",
                "matrix": [[1, 0.45], [0.45, 1]],
                "source": "test",
            }
        ],
        "criteria": {"inclusion": [{"expr": "bmi_kg_m2 >= 15", "source": "test"}]},
    }


#: The acceptance table: figures that differ from the population above by 0.3-0.5 SD.
TABLE = {
    "name": "test_table1",
    "title": "A baseline table written by the test suite",
    "citation": "tests/test_matching.py (invented figures)",
    "n": 400,
    "role": "validation",
    "targets": [
        {"variable": "age_yr", "mean": 78.0, "sd": 7.0, "units": "yr"},
        {"variable": "sex", "proportions": {"female": 0.42, "male": 0.58}},
        {"variable": "weight_kg", "median": 80.0, "iqr": [70.0, 91.0], "units": "kg"},
        {
            "variable": "height_cm",
            "subgroup": "sex == 'female'",
            "n": 170,
            "mean": 164.0,
            "sd": 6.5,
        },
        {"label": "obesity", "where": "bmi_kg_m2 >= 30", "proportion": 0.30},
    ],
}


@pytest.fixture(scope="module")
def population():
    return cohorts.load_spec(_population())


@pytest.fixture(scope="module")
def candidates(population):
    return cohorts.sample(population, 20_000, seed=7)


def _normal_cohort(n=100_000, seed=1, **columns) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    data = {"x": ("patient", rng.standard_normal(n), {"units": "1"})}
    data.update({k: ("patient", v(rng, n), {"units": "1"}) for k, v in columns.items()})
    return xr.Dataset(data, coords={"patient": np.arange(n)})


def _table(*rows, n=400, **extra) -> dict:
    return {"name": "t", "citation": "test", "n": n, "targets": list(rows), **extra}


# --------------------------------------------------------------------------- intervals


def test_sampling_intervals_known_values():
    # textbook formulas (cohorts/intervals.py): z = 1.959964
    assert intervals.mean_interval(80, 6, 100) == pytest.approx((78.824, 81.176), abs=1e-3)
    # Wilson 1927: 50 of 100 -> 0.4038-0.5962; 0 of 50 -> upper z^2 / (n + z^2)
    assert intervals.proportion_interval(0.5, 100) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    assert intervals.proportion_interval(0.0, 50) == pytest.approx((0.0, 3.8415 / 53.8415), 1e-4)
    # chi-square interval, SD 10 from n = 50: chi2(0.975, 49) = 70.222, chi2(0.025, 49) = 31.555
    assert intervals.sd_interval(10, 50) == pytest.approx((8.3533, 12.4613), abs=1e-4)
    # Fisher z: r = 0.5, n = 103 -> tanh(0.5493 -/+ 0.196)
    assert intervals.correlation_interval(0.5, 103) == pytest.approx((0.3393, 0.6323), abs=1e-4)
    # median 80, IQR 70-92, n = 100: 0.5 -/+ 0.098 on the probability scale
    assert intervals.quantile_interval(0.5, (70, 80, 92), 100) == pytest.approx(
        (80 - 0.098 / 0.25 * 10, 80 + 0.098 / 0.25 * 12), abs=1e-3
    )


def test_sampling_intervals_cover_the_figures_of_simulated_studies():
    """The interval is the range a study of size n reports 95 % of the time (skewed data)."""
    rng = np.random.default_rng(3)
    n, studies = 400, 4000
    data = rng.lognormal(4.0, 0.5, size=(studies, n))
    pop = stats.lognorm(s=0.5, scale=math.exp(4.0))
    quartiles = tuple(pop.ppf([0.25, 0.5, 0.75]))
    lo, hi = intervals.quantile_interval(0.5, quartiles, n)
    medians = np.median(data, axis=1)
    assert np.mean((medians >= lo) & (medians <= hi)) == pytest.approx(0.95, abs=0.015)
    lo, hi = intervals.mean_interval(pop.mean(), pop.std(), n)
    means = data.mean(axis=1)
    assert np.mean((means >= lo) & (means <= hi)) == pytest.approx(0.95, abs=0.015)
    p = 0.12
    lo, hi = intervals.proportion_interval(p, n)
    props = (rng.random((studies, n)) < p).mean(axis=1)
    assert np.mean((props >= lo) & (props <= hi)) == pytest.approx(0.95, abs=0.02)


# --------------------------------------------------------------------------- target tables


def test_load_targets_expands_rows_into_figures(tmp_path):
    path = tmp_path / "table1.yaml"
    path.write_text(yaml.safe_dump(TABLE, sort_keys=False))
    table = cohorts.load_targets(path)
    assert table.n == 400 and table.role == "validation" and table.source_file == str(path)
    stats_ = [(s.label, s.statistic) for s in table.statistics]
    assert stats_ == [
        ("age_yr mean", "mean"),
        ("age_yr SD", "sd"),
        ("sex = female", "proportion"),
        ("sex = male", "proportion"),
        ("weight_kg Q1", "q25"),
        ("weight_kg median", "median"),
        ("weight_kg Q3", "q75"),
        ("height_cm mean | sex == 'female'", "mean"),
        ("height_cm SD | sex == 'female'", "sd"),
        ("obesity", "proportion"),
    ]
    height = table.statistics[7]
    assert height.n == 170 and height.citation == TABLE["citation"]
    assert (height.ci_low, height.ci_high) == pytest.approx(
        intervals.mean_interval(164.0, 6.5, 170)
    )
    assert table.variables == ["age_yr", "height_cm", "sex", "weight_kg"]
    assert cohorts.load_targets(table) is table
    assert len(table.to_frame()) == 10


BAD_TABLES = {
    "unknown_top_key": (
        lambda t: t.update(sample_size=400),
        "<top level>",
        r"'sample_size' was unexpected\).*allowed keys: \['citation', 'confidence'",
    ),
    "unknown_row_key": (
        lambda t: t["targets"][0].update(average=78),
        "targets[0]",
        r"'average' was unexpected.*allowed keys: \[.*'mean'",
    ),
    "bad_number": (
        lambda t: t["targets"][0].update(mean="seventy-eight"),
        "targets[0].mean",
        r"'seventy-eight' is not of type 'number'",
    ),
    "negative_sd": (
        lambda t: t["targets"][0].update(sd=-7),
        "targets[0].sd",
        r"-7 is out of range; allowed: > 0",
    ),
    "proportion_above_one": (
        lambda t: t["targets"][4].update(proportion=30),
        "targets[4].proportion",
        r"30 is out of range; allowed: <= 1",
    ),
    "two_figures": (
        lambda t: t["targets"][0].update(median=77),
        "targets[0]",
        r"exactly one of \['mean', 'median'.*gives \['mean', 'median'\]",
    ),
    "quartiles_out_of_order": (
        lambda t: t["targets"][2].update(iqr=[85, 91]),
        "targets[2].iqr",
        r"q1 <= median <= q3.*q1 85.0, median 80.0",
    ),
    "proportions_sum_above_one": (
        lambda t: t["targets"][1].update(proportions={"female": 0.52, "male": 0.58}),
        "targets[1].proportions",
        r"proportions of 'sex' sum to 1.1; allowed: at most 1",
    ),
    "proportions_over_two_rows": (
        lambda t: (
            t["targets"][1].update(proportions={"female": 0.42}),
            t["targets"].append({"variable": "sex", "proportions": {"male": 0.70}}),
        ),
        "targets[1], targets[5]",
        r"proportions of 'sex' sum to 1.12",
    ),
    "variable_and_where": (
        lambda t: t["targets"][4].update(variable="sex"),
        "targets[4]",
        r"either a yes/no 'variable' or a condition 'where'",
    ),
    "row_n_above_table_n": (
        lambda t: t["targets"][3].update(n=4000),
        "targets[3].n",
        r"4000 exceeds the table's n \(400\)",
    ),
    "no_citation": (
        lambda t: t.pop("citation"),
        "<top level>",
        r"'citation' is a required property",
    ),
    "forbidden_expression": (
        lambda t: t["targets"][4].update(where="bmi_kg_m2.real >= 30"),
        "targets[4].where",
        r"forbidden construct Attribute.*allowed:",
    ),
    "repeated_figure": (
        lambda t: t["targets"].append({"variable": "age_yr", "mean": 70, "sd": 5}),
        "targets[5]",
        r"'age_yr mean' repeats the figure of targets\[0\]",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_TABLES))
def test_bad_table_names_file_key_and_allowed(tmp_path, case):
    edit, key, pattern = BAD_TABLES[case]
    raw = json.loads(json.dumps(TABLE))
    edit(raw)
    path = tmp_path / f"{case}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    with pytest.raises(cohorts.TargetError, match=pattern) as info:
        cohorts.load_targets(path)
    assert info.value.key == key
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        ("just a sentence of text\n", r"is a single text value, not a target table: expected"),
        ("- one\n- two\n", r"is a list, not a target table"),
        ("a: [unclosed\n", r"not valid YAML at line 2"),
    ],
)
def test_table_that_is_not_a_mapping(tmp_path, content, pattern):
    path = tmp_path / "table.yaml"
    path.write_text(content)
    with pytest.raises(cohorts.TargetError, match=pattern) as info:
        cohorts.load_targets(path)
    assert str(path) in str(info.value) and "sentence" not in str(info.value)


CHECK_ERRORS = {
    "unknown_variable": (
        {"variable": "annulus_mm2", "mean": 400, "sd": 80},
        "targets[0].variable",
        r"no variable 'annulus_mm2'; available: \['age_yr', 'bmi_kg_m2', 'height_cm'",
    ),
    "unknown_category": (
        {"variable": "sex", "proportions": {"woman": 0.4}},
        "targets[0].proportions",
        r"'sex' has no category 'woman'; allowed: \['female', 'male'\]",
    ),
    "categories_do_not_sum_to_one": (
        {"variable": "sex", "proportions": {"female": 0.4, "male": 0.5}},
        "targets[0]",
        r"every category of 'sex' sum to 0.9; allowed: 1",
    ),
    "mean_of_categorical": (
        {"variable": "sex", "mean": 0.5, "sd": 0.5},
        "targets[0].variable",
        r"'sex' is categorical.*give its 'proportions'",
    ),
    "proportion_of_continuous": (
        {"variable": "age_yr", "proportion": 0.3},
        "targets[0].variable",
        r"'age_yr' is not a yes/no variable.*use 'proportions'",
    ),
    "units": (
        {"variable": "height_cm", "mean": 1.7, "sd": 0.07, "units": "m"},
        "targets[0].units",
        r"'m' differs from the cohort's height_cm units 'cm'",
    ),
    "empty_subgroup": (
        {"variable": "age_yr", "mean": 80, "sd": 7, "subgroup": "age_yr > 200"},
        "targets[0].subgroup",
        r"no patient of the cohort is in subgroup",
    ),
    "unknown_name_in_where": (
        {"where": "diabetes == 1", "proportion": 0.3},
        "targets[0].where",
        r"unknown variable 'diabetes'.*known variables here",
    ),
}


@pytest.mark.parametrize("case", sorted(CHECK_ERRORS))
def test_check_against_cohort(candidates, case):
    row, key, pattern = CHECK_ERRORS[case]
    table = cohorts.load_targets(_table(row), source_file="table1.yaml")
    with pytest.raises(cohorts.TargetError, match=pattern) as info:
        table.check(candidates)
    assert info.value.key == key and str(info.value).startswith("table1.yaml: key")


# --------------------------------------------------------------------------- entropy balancing


def test_entropy_balancing_reproduces_exponential_tilting():
    """Weights to a shifted mean are exp(lambda x): N(0, 1) tilted to mean 0.5 has
    lambda = 0.5; to N(0.5, 0.8^2) (mean and SD) log-weights are 0.78125 x - 0.28125 x^2."""
    ds = _normal_cohort()
    x = ds["x"].values
    res = cohorts.match(ds, _table({"variable": "x", "mean": 0.5, "sd": 1.0}), max_ratio=1e9)
    # mean and SD: tilting by b x + c x^2 gives N(b / (1 - 2c), 1 / (1 - 2c))
    log_g = np.log(res.cohort["matching_weight"].values)
    coef, resid, *_ = np.linalg.lstsq(np.c_[np.ones_like(x), x, x * x], log_g, rcond=None)
    assert coef[1] == pytest.approx(0.5, abs=0.02) and abs(coef[2]) < 0.02
    assert resid[0] < 1e-12 * len(x)  # exactly exponential-quadratic in x
    res = cohorts.match(ds, _table({"variable": "x", "mean": 0.5, "sd": 0.8}), max_ratio=1e9)
    log_g = np.log(res.cohort["matching_weight"].values)
    coef = np.linalg.lstsq(np.c_[np.ones_like(x), x, x * x], log_g, rcond=None)[0]
    assert coef[1] == pytest.approx(0.78125, abs=0.02)
    assert coef[2] == pytest.approx(-0.28125, abs=0.01)
    cert = res.certificate
    assert cert["achieved"].tolist() == pytest.approx([0.5, 0.8], abs=1e-4)
    assert cert["passed"].all() and res.summary["weights"]["exact"]


def test_raking_to_known_margins_gives_independent_cells():
    """Equal cells raked to margins (0.3, 0.7) x (0.6, 0.4): cell shares are the products."""
    a = np.repeat([0, 0, 1, 1], 1000).astype(np.int8)
    b = np.tile(np.repeat([0, 1], 1000), 2).astype(np.int8)
    attrs = {"flag_values": [0, 1], "flag_meanings": "no yes"}
    ds = xr.Dataset({"a": ("patient", a, attrs), "b": ("patient", b, attrs)})
    table = _table(
        {"variable": "a", "proportions": {"no": 0.3, "yes": 0.7}},
        {"variable": "b", "proportions": {"no": 0.6, "yes": 0.4}},
    )
    w = cohorts.match(ds, table).cohort["sampling_weight"].values
    shares = [w[(a == i) & (b == j)].sum() / w.sum() for i in (0, 1) for j in (0, 1)]
    assert shares == pytest.approx([0.18, 0.12, 0.42, 0.28], abs=1e-9)


def _ipf(counts: np.ndarray, margins: list[np.ndarray], sweeps: int = 500) -> np.ndarray:
    """Iterative proportional fitting (Deming-Stephan), the reference raking algorithm."""
    fit = counts / counts.sum()
    for _ in range(sweeps):
        for axis, margin in enumerate(margins):
            other = tuple(k for k in range(fit.ndim) if k != axis)
            shape = [1] * fit.ndim
            shape[axis] = -1
            fit = fit * (margin / fit.sum(axis=other)).reshape(shape)
    return fit


def test_entropy_balancing_equals_iterative_proportional_fitting():
    """Ireland & Kullback 1968: IPF converges to the minimum-discrimination (entropy) fit."""
    rng = np.random.default_rng(5)
    counts = rng.integers(20, 200, size=(3, 3, 2))
    margins = [np.array([0.5, 0.3, 0.2]), np.array([0.2, 0.2, 0.6]), np.array([0.45, 0.55])]
    cells = np.indices(counts.shape).reshape(3, -1).T
    patients = np.repeat(cells, counts.ravel(), axis=0)
    names = ["u", "v", "s"]
    data = {}
    for k, name in enumerate(names):
        cats = [f"c{i}" for i in range(counts.shape[k])]
        attrs = {"flag_values": list(range(len(cats))), "flag_meanings": " ".join(cats)}
        data[name] = ("patient", patients[:, k].astype(np.int8), attrs)
    ds = xr.Dataset(data)
    table = _table(
        *[
            {"variable": n, "proportions": {f"c{i}": float(p) for i, p in enumerate(m)}}
            for n, m in zip(names, margins, strict=True)
        ]
    )
    w = cohorts.match(ds, table, max_ratio=1e6).cohort["sampling_weight"].values
    got = np.zeros(counts.shape)
    np.add.at(got, tuple(patients.T), w / w.sum())
    np.testing.assert_allclose(got, _ipf(counts.astype(float), margins), atol=1e-9)


def test_weight_bound_holds_and_infeasible_bound_says_how_close():
    ds = _normal_cohort(50_000)
    table = _table({"variable": "x", "mean": 0.6, "sd": 1.0})
    res = cohorts.match(ds, table, max_ratio=5.0)
    g = res.cohort["matching_weight"].values
    assert g.max() <= 5.0 * (1 + 1e-9) and res.certificate["passed"].all()
    assert res.summary["kish_n"] >= 50_000 / 5.0
    # mean 3 with g <= 20: best is all weight on the top 5 %, whose mean is
    # phi(1.645) / 0.05 = 2.063 for N(0, 1)
    far = _table({"variable": "x", "mean": 3.0, "sd": 1.0})
    with pytest.raises(cohorts.InfeasibleTargetsError) as info:
        cohorts.match(ds, far, max_ratio=20.0)
    err = info.value
    nearest = err.certificate.set_index("label").loc["x mean", "achieved"]
    assert nearest == pytest.approx(stats.norm.pdf(1.6449) / 0.05, abs=0.06)
    assert "x mean" in err.targets and err.max_abs_smd > 0.5
    msg = str(err)
    assert "max_ratio 20" in msg and "x mean: achieved 2.0" in msg and "largest |SMD|" in msg


def test_matching_weights_multiply_the_oversampling_weights():
    raw = {"name": "over", "variables": {"x": _var({"type": "normal", "mean": 10, "sd": 2})}}
    raw["oversample"] = [{"name": "high", "where": "x > 12", "factor": 4, "source": "t"}]
    ds = cohorts.sample(cohorts.load_spec(raw), 40_000, seed=5)
    base = ds["sampling_weight"].values
    p_high = 0.5 * math.erfc(1 / math.sqrt(2))
    # the population's own figures: base weights already meet them, matching leaves ~1
    table = _table(
        {"variable": "x", "mean": 10.0, "sd": 2.0},
        {"where": "x > 12", "proportion": p_high},
        n=2000,
    )
    res = cohorts.match(ds, table)
    g = res.cohort["matching_weight"].values
    np.testing.assert_array_equal(res.cohort["sampling_weight"].values, base * g)
    assert np.quantile(np.abs(g - 1.0), 0.99) < 0.1
    high = ds["x"].values > 12
    w = res.cohort["sampling_weight"].values
    assert w[high].sum() / w.sum() == pytest.approx(p_high, abs=1e-9)
    assert high.mean() > 2.5 * p_high  # the candidates were oversampled


# --------------------------------------------------------------------------- select


def test_select_draws_the_tilted_distribution():
    """Acceptance with probability proportional to exp(0.5 x) turns N(0, 1) into N(0.5, 1)."""
    ds = _normal_cohort(60_000, seed=2)
    table = _table({"variable": "x", "mean": 0.5, "sd": 1.0}, n=1000)
    res = cohorts.match(ds, table, method="select", size=3000, max_ratio=1e9, seed=11)
    sel = res.cohort
    assert sel.sizes["patient"] == 3000
    np.testing.assert_array_equal(sel["patient"].values, np.arange(3000))
    np.testing.assert_array_equal(sel["sampling_weight"].values, 1.0)
    picked = sel["candidate_patient"].values
    assert np.all(np.diff(picked) > 0)
    np.testing.assert_array_equal(sel["x"].values, ds["x"].values[picked])
    assert stats.kstest(sel["x"].values, stats.norm(0.5, 1.0).cdf).pvalue > 0.01
    info = res.summary["select"]
    rate = info["n_accepted"] / info["n_candidates"]
    expected = info["expected_acceptance_rate"]
    assert rate == pytest.approx(expected, abs=4 * math.sqrt(expected / 60_000))
    again = cohorts.match(ds, table, method="select", size=3000, max_ratio=1e9, seed=11)
    np.testing.assert_array_equal(again.cohort["candidate_patient"].values, picked)
    other = cohorts.match(ds, table, method="select", size=3000, max_ratio=1e9, seed=12)
    assert not np.array_equal(other.cohort["candidate_patient"].values, picked)


def test_select_from_too_few_candidates():
    ds = _normal_cohort(2000)
    with pytest.raises(cohorts.MatchError, match=r"fewer than the 1500 asked for; draw at least"):
        cohorts.match(ds, _table({"variable": "x", "mean": 0.8, "sd": 1.0}), "select", size=1500)


# --------------------------------------------------------------------------- fit


def _fit_spec(**dists) -> dict:
    return {"name": "fit", "variables": {k: _var(v) for k, v in dists.items()}}


def test_fit_normal_and_categorical_known_answer():
    """Without criteria the fitted numbers are closed-form functions of the common random
    numbers: x = mean + sd z, so mean = m - sd mean(z) and sd = s / sd(z)."""
    spec = _fit_spec(
        x={"type": "normal", "mean": 0.0, "sd": 1.0},
        c={"type": "categorical", "categories": ["p", "q", "r"], "probabilities": [0.2, 0.3, 0.5]},
    )
    table = _table(
        {"variable": "x", "mean": 3.0, "sd": 2.0},
        {"variable": "c", "proportions": {"p": 0.5, "q": 0.3, "r": 0.2}},
    )
    fit = cohorts.fit_spec(spec, table, n=5000, seed=4)
    z = cohorts.sample(cohorts.load_spec(spec), 5000, seed=4)["x"].values
    dist = fit.spec.raw["variables"]["x"]["distribution"]
    sd = 2.0 / z.std(ddof=1)
    assert dist["sd"] == pytest.approx(sd, rel=1e-3)
    assert dist["mean"] == pytest.approx(3.0 - sd * z.mean(), abs=2e-3)
    codes = cohorts.sample(fit.spec, 5000, seed=4)["c"].values
    assert np.bincount(codes, minlength=3) / 5000 == pytest.approx([0.5, 0.3, 0.2], abs=2e-3)
    assert fit.certificate["passed"].all()
    assert set(fit.parameters["key"]) == {
        "variables.x.distribution.mean",
        "variables.x.distribution.sd",
        "variables.c.distribution.probabilities[0]",
        "variables.c.distribution.probabilities[1]",
        "variables.c.distribution.probabilities[2]",
    }
    assert "refitted by cohorts.fit_spec to t" in fit.spec.raw["variables"]["x"]["source"]


def test_fit_truncated_normal_finds_the_parent_parameters():
    """Target mean 2 and SD 1 of a normal truncated to [0, 10]: the parent normal solves
    truncnorm.mean = 2, truncnorm.std = 1 (scipy), up to sampling error of 20 000 patients."""
    spec = _fit_spec(t={"type": "truncnorm", "mean": 3.0, "sd": 2.0, "lower": 0, "upper": 10})
    table = _table({"variable": "t", "mean": 2.0, "sd": 1.0})
    fit = cohorts.fit_spec(spec, table, n=20_000, seed=8)

    def moments(p):
        mu, sigma = p
        d = stats.truncnorm((0 - mu) / sigma, (10 - mu) / sigma, loc=mu, scale=sigma)
        return [d.mean() - 2.0, d.std() - 1.0]

    mu, sigma = optimize.fsolve(moments, [2.0, 1.0])
    dist = fit.spec.raw["variables"]["t"]["distribution"]
    assert dist["mean"] == pytest.approx(mu, abs=0.05)
    assert dist["sd"] == pytest.approx(sigma, rel=0.03)
    assert (dist["lower"], dist["upper"]) == (0, 10)


def test_fit_copula_correlation():
    """Normal marginals: Pearson r = 2 sin(pi rho_s / 6), so r = 0.6 needs rho_s = 0.582."""
    spec = _fit_spec(
        x={"type": "normal", "mean": 0, "sd": 1}, y={"type": "normal", "mean": 5, "sd": 2}
    )
    spec["copula"] = [{"variables": ["x", "y"], "matrix": [[1, 0.2], [0.2, 1]], "source": "t"}]
    fit = cohorts.fit_spec(spec, _table({"variable": "x", "with": "y", "correlation": 0.6}))
    rho = fit.spec.raw["copula"][0]["matrix"][0][1]
    assert rho == pytest.approx(6 / math.pi * math.asin(0.3), abs=0.015)
    assert fit.spec.raw["copula"][0]["matrix"][1][0] == rho


def test_fit_names_what_it_cannot_fit():
    spec = _fit_spec(u={"type": "uniform", "lower": 0, "upper": 1})
    with pytest.raises(
        cohorts.MatchError, match=r"targets\[0\] \(u mean\): 'u' has a \['uniform'\]"
    ):
        cohorts.fit_spec(spec, _table({"variable": "u", "mean": 0.7, "sd": 0.2}))


# --------------------------------------------------------------------------- acceptance


@pytest.mark.parametrize("method", ["weights", "select", "fit"])
def test_each_method_meets_every_target(population, candidates, method):
    options = {"select": {"size": 1500}, "fit": {"spec": population, "n_fit": 10_000}}
    res = cohorts.match(candidates, TABLE, method=method, **options.get(method, {}))
    cert = res.certificate
    assert len(cert) == 10
    assert cert["passed"].all(), cert[["label", "target", "ci_low", "ci_high", "achieved"]]
    assert res.summary["all_passed"] and res.summary["method"] == method
    # the certificate is recomputable from the returned cohort alone
    again = cohorts.certificate(res.cohort, TABLE)
    np.testing.assert_allclose(again["achieved"], cert["achieved"])
    # the unmatched candidates miss targets: matching did the work
    assert not cohorts.certificate(candidates, TABLE)["passed"].all()
    if method == "fit":
        assert res.cohort.attrs["spec_name"] == "adults-fitted-test_table1"
        assert res.cohort.sizes["patient"] == candidates.sizes["patient"]
        assert "matching_weight" not in res.cohort
    assert res.cohort.attrs["matching_method"] == method
    json.dumps(res.summary)  # the summary is JSON as it stands


CONTRADICTIONS = {
    "contradicting_rows": (
        [
            {"variable": "sex", "proportions": {"female": 0.40, "male": 0.60}},
            {"label": "women", "where": "sex == 'female'", "proportion": 0.60},
        ],
        ["sex = female", "women"],
    ),
    "outside_the_candidates": (
        [{"variable": "age_yr", "mean": 97.0, "sd": 5.0}],  # age is truncated at 95
        ["age_yr mean"],
    ),
}


@pytest.mark.parametrize("method", ["weights", "select"])
@pytest.mark.parametrize("case", sorted(CONTRADICTIONS))
def test_infeasible_targets_one_clear_error(candidates, case, method):
    rows, labels = CONTRADICTIONS[case]
    table = cohorts.load_targets(_table(*rows), source_file="t1.yaml")
    with pytest.raises(cohorts.InfeasibleTargetsError) as info:
        cohorts.match(candidates, table, method=method)
    err = info.value
    assert set(labels) <= set(err.targets)
    msg = str(err)
    assert msg.startswith("t1.yaml: no weights of the 20000 candidates")
    assert all(label in msg for label in labels) and "largest |SMD|" in msg
    assert math.isfinite(err.max_abs_smd) and err.max_abs_smd > 0.1


def test_overlapping_contradiction_is_met_within_intervals(candidates):
    """0.40 and 0.43 women cannot both hold exactly, but 0.415 lies in both intervals."""
    table = _table(
        {"variable": "sex", "proportions": {"female": 0.40, "male": 0.60}},
        {"label": "women", "where": "sex == 'female'", "proportion": 0.43},
    )
    res = cohorts.match(candidates, table)
    assert res.certificate["passed"].all() and not res.summary["weights"]["exact"]


def test_fit_infeasible_targets(population, candidates):
    table = _table({"variable": "age_yr", "mean": 97.0, "sd": 5.0})
    with pytest.raises(cohorts.InfeasibleTargetsError, match=r"no values of the 2 fittable"):
        cohorts.match(candidates, table, method="fit", spec=population, n_fit=3000)


# --------------------------------------------------------------------------- certificate


def test_certificate_columns_smd_and_pass_rule(tmp_path):
    rng = np.random.default_rng(9)
    n = 1000
    ds = xr.Dataset(
        {
            "x": ("patient", rng.normal(10, 2, n), {"units": "mm"}),
            "flag": ("patient", (rng.random(n) < 0.3).astype(np.int8), {"units": "1"}),
        }
    )
    table = _table(
        {"variable": "x", "mean": 10.0, "sd": 2.0},
        {"variable": "flag", "proportion": 0.25},
        {"variable": "x", "median": 10.0, "iqr": [8.6, 11.4]},
        n=200,
    )
    cert = cohorts.certificate(ds, table, method="none")
    assert list(cert.columns) == CERTIFICATE_COLUMNS
    x, flag = ds["x"].values, ds["flag"].values
    mean = cert.iloc[0]
    pooled = math.sqrt((4.0 + x.std(ddof=1) ** 2) / 2)
    assert mean.achieved == pytest.approx(x.mean())
    assert mean.smd == pytest.approx((x.mean() - 10.0) / pooled)  # Austin 2009
    assert mean.units == "mm" and mean.n_cohort == n and mean.n_eff == pytest.approx(n)
    sd = cert.iloc[1]
    assert sd.smd == pytest.approx(math.log(x.std(ddof=1) / 2.0))
    prop = cert.iloc[2]
    p = flag.mean()
    assert prop.smd == pytest.approx((p - 0.25) / math.sqrt((p * (1 - p) + 0.25 * 0.75) / 2))
    assert prop.passed == (prop.ci_low <= p <= prop.ci_high)
    median = cert[cert.statistic == "median"].iloc[0]
    assert median.smd == pytest.approx((median.achieved - 10.0) / (2.8 / 1.349))
    side = np.where(cert.achieved >= cert.target, cert.ci_high, cert.ci_low)
    np.testing.assert_allclose(
        cert.interval_distance, (cert.achieved - cert.target) / np.abs(side - cert.target)
    )
    assert (cert.passed == (cert.interval_distance.abs() <= 1)).all()
    # weights change the answer: all weight on flag == 1 gives proportion 1
    heavy = cohorts.certificate(ds, table, weights=flag.astype(float))
    assert heavy.iloc[2].achieved == 1.0 and not heavy.iloc[2].passed
    summary = cert.attrs["summary"]
    assert summary["n_targets"] == 6 and summary["kish_n"] == pytest.approx(n)
    paths = cohorts.write_certificate(cert, tmp_path / "cert")
    back = pd.read_csv(paths["csv"])
    np.testing.assert_allclose(back.achieved, cert.achieved)
    doc = json.loads(paths["json"].read_text())
    assert doc["summary"]["table"] == "t" and len(doc["targets"]) == 6
    assert doc["summary"]["multivariate"] is None
    assert paths["figure"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_energy_distance_known_answers():
    rng = np.random.default_rng(4)
    u, v = rng.normal(0, 1, 300), rng.normal(0.5, 2, 200)
    a, b = rng.random(300), rng.random(200)
    # scipy's one-dimensional energy distance is the square root of ours (weights included)
    assert cohorts.energy_distance(u, v, a, b) == pytest.approx(
        stats.energy_distance(u, v, a, b) ** 2, rel=1e-10
    )
    # point masses at distance d: E = 2 d
    assert cohorts.energy_distance([[0.0, 0.0]], [[3.0, 4.0]]) == pytest.approx(10.0)
    x = rng.normal(size=(400, 3))
    assert cohorts.energy_distance(x, x) == pytest.approx(0.0, abs=1e-12)
    same = energy_test(x, rng.normal(size=(400, 3)), seed=1)
    shifted = energy_test(x, rng.normal(size=(400, 3)) + [0.3, 0, 0], seed=1)
    assert same["p_value"] > 0.05 and shifted["p_value"] < 0.01
    y = rng.normal(size=(300, 3))
    assert energy_test(x, y, permutations=9)["energy_distance"] == pytest.approx(
        cohorts.energy_distance(x, y)
    )


def test_multivariate_check_against_a_reference_sample():
    """Candidates N(0, 1) x N(0, 1) x {a: 0.5}; reference N(0.5, 0.8^2) x N(-0.3, 1.2^2) x
    {a: 0.3}: matching means, SDs and proportions by entropy balancing tilts normals into
    normals, so the matched cohort has the reference's joint distribution."""
    n = 40_000
    ds = _normal_cohort(
        n,
        seed=3,
        y=lambda r, m: r.standard_normal(m),
        a=lambda r, m: (r.random(m) < 0.5).astype(float),
    )
    rng = np.random.default_rng(30)
    ref = xr.Dataset(
        {
            "x": ("patient", rng.normal(0.5, 0.8, 3000)),
            "y": ("patient", rng.normal(-0.3, 1.2, 3000)),
            "a": ("patient", (rng.random(3000) < 0.3).astype(float)),
        }
    )
    table = _table(
        {"variable": "x", "mean": 0.5, "sd": 0.8},
        {"variable": "y", "mean": -0.3, "sd": 1.2},
        {"variable": "a", "proportion": 0.3},
        n=3000,
    )
    matched = cohorts.match(ds, table, reference=ref, max_ratio=100)
    multi = matched.summary["multivariate"]
    assert multi["variables"] == ["a", "x", "y"] and multi["passed"], multi
    assert 500 <= multi["n_cohort_points"] <= 1000 and multi["n_reference_points"] == 1000
    unmatched = cohorts.certificate(ds, table, reference=ref).attrs["summary"]["multivariate"]
    assert unmatched["p_value"] < 0.01 and not unmatched["passed"]
    assert unmatched["energy_distance"] > 5 * multi["energy_distance"]


# --------------------------------------------------------------------------- balance solver


def test_entropy_balance_solver_bounds_and_residuals():
    x = np.random.default_rng(0).standard_normal(10_000)
    res = entropy_balance(np.c_[x - 0.3, x**2 - 1.09 - 0.0], np.ones_like(x), upper=4.0)
    assert res.converged and res.factor.max() <= 4.0 + 1e-9
    assert np.abs(res.residual).max() < 1e-8 and res.factor.mean() == pytest.approx(1.0)
    with pytest.raises(cohorts.MatchError, match="upper > 1 > lower"):
        entropy_balance(np.c_[x], np.ones_like(x), upper=0.5)


# --------------------------------------------------------------------------- command line


def test_isct_cohort_match_writes_store_and_certificate(tmp_path, capsys):
    spec = tmp_path / "adults.yaml"
    spec.write_text(yaml.safe_dump(_population(), sort_keys=False))
    table = tmp_path / "table1.yaml"
    table.write_text(yaml.safe_dump(TABLE, sort_keys=False))
    out, cert = tmp_path / "cohort.zarr", tmp_path / "certificate"
    argv = ["cohort", str(spec), "--n", "20000", "--seed", "7", "--out", str(out)]
    code = main([*argv, "--match", str(table), "--method", "weights", "--certificate", str(cert)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "matched to test_table1 by weights: 10 of 10 targets" in printed
    ds = xr.open_zarr(out)
    assert "matching_weight" in ds and ds.attrs["matching_table"] == "test_table1"
    assert sorted(p.name for p in cert.iterdir()) == [
        "certificate.csv",
        "certificate.json",
        "certificate.png",
    ]
    assert json.loads((cert / "certificate.json").read_text())["summary"]["all_passed"]
    code = main([*argv, "--match", str(table), "--method", "select", "--size", "800"])
    assert code == 0 and xr.open_zarr(out).sizes["patient"] == 800


def test_match_result_can_overwrite_the_candidate_store(tmp_path, population):
    store = tmp_path / "cohort.zarr"
    lazy = cohorts.write_cohort(population, 5000, store, seed=3, batch_size=2000)
    age = lazy["age_yr"].values
    result = cohorts.match(lazy, TABLE, method="weights")
    result.write(store, tmp_path / "cert")  # the lazily opened source is overwritten
    back = xr.open_zarr(store)
    assert back["age_yr"].chunks == ((5000,),)
    np.testing.assert_array_equal(back["age_yr"].values, age)
    np.testing.assert_allclose(
        cohorts.certificate(back, TABLE)["achieved"], result.certificate["achieved"]
    )


@pytest.mark.parametrize(
    ("extra", "pattern"),
    [
        (["--n", "0"], r"--n must be a positive number of patients, got 0"),
        (["--n", "10", "--certificate", "c"], r"--certificate: only with --match TARGETS"),
    ],
)
def test_isct_cohort_bad_options_one_line(tmp_path, capsys, extra, pattern):
    spec = tmp_path / "adults.yaml"
    spec.write_text(yaml.safe_dump(_population(), sort_keys=False))
    code = main(["cohort", str(spec), "--seed", "1", "--out", str(tmp_path / "o"), *extra])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert re.search(pattern, err)


def test_a_mean_published_without_its_sd_takes_the_cohorts_sd_as_a_plug_in():
    """Known answer: the interval is mean ± z s/√n with s the (weighted) SD of the cohort."""
    rng = np.random.default_rng(3)
    x = rng.normal(80.0, 6.0, 20_000)
    ds = xr.Dataset(
        {"age_yr": ("patient", x, {"units": "yr"})}, coords={"patient": np.arange(x.size)}
    )
    table = cohorts.load_targets(
        {"name": "t", "citation": "c", "n": 400, "targets": [{"variable": "age_yr", "mean": 78.0}]}
    )
    (s,) = table.statistics
    assert math.isnan(s.ci_low) and s.sd is None  # not knowable before a cohort
    (r,) = table.resolved(ds).statistics
    half = 1.959964 * x.std() / math.sqrt(400)
    assert r.ci_low == pytest.approx(78.0 - half, rel=1e-5)
    assert r.ci_high == pytest.approx(78.0 + half, rel=1e-5)
    result = cohorts.match(ds, table, method="weights")
    cert = result.certificate.set_index("statistic")
    assert result.summary["all_passed"] and bool(cert.loc["mean", "passed"])
    assert abs(cert.loc["mean", "achieved"] - 78.0) < half
    with pytest.raises(cohorts.TargetError, match=r"targets\[0\].sd.*subgroup"):
        cohorts.load_targets(
            {"name": "t", "citation": "c", "n": 400,
             "targets": [{"variable": "age_yr", "mean": 78.0, "subgroup": "age_yr > 70"}]}
        )  # fmt: skip


@pytest.mark.parametrize("name", ["evolut_low_risk", "tvt_registry"])
def test_the_shipped_target_tables_load_and_fit_the_tavr_cohort(name):
    from conftest import REPO, TAVR_SPEC

    table = cohorts.load_targets(REPO / "cohorts" / "targets" / f"{name}.yaml")
    assert table.role == "validation" and table.citation and table.n > 100
    ds = cohorts.sample(cohorts.load_spec(TAVR_SPEC), 4000, seed=5)
    result = cohorts.match(ds, table, method="weights")
    assert result.summary["all_passed"], result.certificate
