"""Tests of the cohorts package: specs, random streams, sampling, zarr streaming, checks."""

from __future__ import annotations

import copy
import math
import re

import numpy as np
import pytest
import xarray as xr
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cohorts
from cohorts._random import patient_keys, philox4x32, uniforms
from cohorts.expr import ExpressionError, compile_expression

TAVR_NAMES = [
    "sex",
    "age_yr",
    "height_cm",
    "weight_kg",
    "bsa_m2",
    "bmi_kg_m2",
    "annulus_area_mm2",
    "annulus_perimeter_mm",
    "annulus_eccentricity",
    "av_calcium_agatston",
    "lvef_pct",
    "heart_rate_bpm",
    "svi_ml_m2",
    "sbp_mmhg",
    "dbp_mmhg",
]
PROPERTY = settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _var(dist, **extra):
    return {
        "long_name": "test variable",
        "units": "1",
        "source": "test",
        "distribution": dist,
        **extra,
    }


def _base_spec() -> dict:
    """Small spec using every feature: given, copula, derived, criteria, targets."""
    return {
        "name": "demo",
        "variables": {
            "group": _var(
                {"type": "categorical", "categories": ["a", "b"], "probabilities": [0.4, 0.6]}
            ),
            "x": _var({"type": "normal", "mean": 10.0, "sd": 2.0}),
            "y": _var(
                {
                    "a": {"type": "gamma", "mean": 5.0, "sd": 1.0},
                    "b": {"type": "lognormal", "mean": 8.0, "sd": 2.0},
                },
                given="group",
            ),
        },
        "derived": {
            "ratio": {"expr": "y / x", "long_name": "y over x", "units": "1", "source": "test"},
        },
        "copula": [
            {
                "variables": ["x", "y"],
                "given": "group",
                "kind": "spearman",
                "matrix": {"a": [[1, 0.5], [0.5, 1]], "b": [[1, -0.3], [-0.3, 1]]},
                "source": "test",
            },
        ],
        "criteria": {"inclusion": [{"expr": "x > 6", "source": "test"}]},
    }


@pytest.fixture(scope="module")
def tavr():
    return cohorts.load_spec(cohorts.population_path("tavr_severe_as"))


@pytest.fixture(scope="module")
def tavr_cohort(tavr):
    return cohorts.sample(tavr, 20_000, seed=20240601)


# --------------------------------------------------------------------------- random streams


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    seed=st.one_of(st.integers(0, 2**32 - 1), st.integers(2**32, 2**160)),
    index=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=5),
)
def test_patient_keys_equal_numpy_seedsequence(seed, index):
    keys = patient_keys(seed, np.asarray(index))
    expected = [
        np.random.SeedSequence(seed, spawn_key=(i,)).generate_state(1, np.uint64)[0] for i in index
    ]
    np.testing.assert_array_equal(keys, np.asarray(expected, dtype=np.uint64))


@pytest.mark.parametrize(
    ("key", "counter", "expected"),
    [  # Random123 known-answer vectors (kat_vectors, philox4x32 with 10 rounds)
        ((0, 0), (0, 0, 0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
        ((0xFFFFFFFF,) * 2, (0xFFFFFFFF,) * 4, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
        (
            (0xA4093822, 0x299F31D0),
            (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
            (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
        ),
    ],
)
def test_philox_known_answers(key, counter, expected):
    k = np.array([key[0] | (key[1] << 32)], dtype=np.uint64)
    out = philox4x32(k, *(np.array([c]) for c in counter))
    assert tuple(int(o[0]) for o in out) == expected


def test_uniforms_open_interval_and_moments():
    u = uniforms(patient_keys(7, np.arange(20_000)), 0, 9)
    assert u.shape == (20_000, 9)
    assert u.min() > 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.005
    assert abs(u.var() - 1 / 12) < 0.002
    # Draws of different attempts and columns are uncorrelated.
    v = uniforms(patient_keys(7, np.arange(20_000)), 1, 9)
    assert abs(np.corrcoef(u[:, 0], v[:, 0])[0, 1]) < 0.04
    assert abs(np.corrcoef(u[:, 0], u[:, 1])[0, 1]) < 0.04


# --------------------------------------------------------------------------- expressions


def test_expression_values():
    env = {
        "h": np.array([170.0, 160.0]),
        "w": np.array([70.0, 50.0]),
        "sex": np.array([0, 1], dtype=np.int8),
    }
    f = compile_expression("sqrt(h * w / 3600)", env, where="k")
    np.testing.assert_allclose(f(env), np.sqrt(env["h"] * env["w"] / 3600))
    g = compile_expression(
        "where(sex == 'male', clip(w, 55, 60), -w ** 2 % 7)",
        env,
        where="k",
        categories={"sex": ["female", "male"]},
    )
    np.testing.assert_allclose(g(env), [(-(70.0**2)) % 7, 55.0])
    h = compile_expression("not (50 < w <= 70) or log(exp(h)) > 165", env, where="k")
    np.testing.assert_array_equal(h(env), [True, True])


@pytest.mark.parametrize(
    "text",
    [
        "x.__class__",
        "__import__('os').system('true')",
        "eval('1')",
        "x[0]",
        "(lambda: 1)()",
        "[v for v in x]",
        "'text'",
        "sqrt(x=1)",
        "x if x > 0 else 1",
    ],
)
def test_expression_forbidden_constructs(text):
    with pytest.raises(ExpressionError) as info:
        compile_expression(text, {"x"}, where="derived.z.expr")
    assert info.value.kind == "forbidden"
    assert "derived.z.expr" in str(info.value) and "allowed" in str(info.value)


def test_expression_unknown_variable_and_level():
    with pytest.raises(ExpressionError, match="unknown variable 'wt'.*known variables"):
        compile_expression("wt / 2", {"w"}, where="k")
    with pytest.raises(ExpressionError, match=r"no category 'other'.*\['female', 'male'\]"):
        compile_expression(
            "sex == 'other'", {"sex"}, where="k", categories={"sex": ["female", "male"]}
        )


# --------------------------------------------------------------------------- bad specs


def _write(tmp_path, raw, name="bad.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _mutate(edit):
    raw = _base_spec()
    edit(raw)
    return raw


def _add_block(raw, matrix, **extra):
    raw["variables"].update(
        {
            "u": _var({"type": "uniform", "lower": 0, "upper": 1}),
            "v": _var({"type": "beta", "mean": 0.3, "sd": 0.1}),
            "t": _var({"type": "normal", "mean": 0, "sd": 1}),
        }
    )
    raw["copula"].append(
        {"variables": ["u", "v", "t"], "kind": "pearson", "matrix": matrix, "source": "t", **extra}
    )


BAD_SPECS = {
    "not_pd": (
        lambda r: _add_block(r, [[1, 0.9, -0.9], [0.9, 1, 0.9], [-0.9, 0.9, 1]]),
        "copula[1].matrix",
        r"not positive definite \(smallest eigenvalue -.*repair: true",
    ),
    "unknown_variable": (
        lambda r: r["derived"].update(
            {"bad": {"expr": "x + zz", "long_name": "b", "units": "1", "source": "t"}}
        ),
        "derived.bad.expr",
        r"unknown variable 'zz'.*known variables here: \['group', 'ratio', 'x', 'y'\]",
    ),
    "forbidden_construct": (
        lambda r: r["criteria"]["inclusion"].append({"expr": "x.real > 0", "source": "t"}),
        "criteria.inclusion[1].expr",
        r"forbidden construct Attribute.*allowed:",
    ),
    "negative_sd": (
        lambda r: r["variables"]["x"]["distribution"].update({"sd": -2.0}),
        "variables.x.distribution.sd",
        r"-2.0 is out of range; allowed: > 0",
    ),
    "negative_sd_in_level": (
        lambda r: r["variables"]["y"]["distribution"]["a"].update({"sd": -1}),
        "variables.y.distribution.a.sd",
        r"-1 is out of range; allowed: > 0",
    ),
    "missing_parameter": (
        lambda r: r["variables"]["x"]["distribution"].pop("mean"),
        "variables.x.distribution",
        r"'mean' is a required property",
    ),
    "probabilities": (
        lambda r: r["variables"]["group"]["distribution"].update({"probabilities": [0.4, 0.5]}),
        "variables.group.distribution.probabilities",
        r"sum to 0.9; allowed: non-negative numbers summing to 1",
    ),
    "unknown_type": (
        lambda r: r["variables"]["x"]["distribution"].update({"type": "weibull"}),
        "variables.x.distribution.type",
        r"'weibull' is not allowed; allowed values: \['normal', 'truncnorm'",
    ),
    "given_not_categorical": (
        lambda r: r["variables"]["y"].update({"given": "x"}),
        "variables.y.given",
        r"'x' is not an unconditioned categorical declared earlier; allowed: \['group'\]",
    ),
    "level_mismatch": (
        lambda r: r["variables"]["y"]["distribution"].pop("b"),
        "variables.y.distribution",
        r"do not match the categories of 'group'; allowed: \['a', 'b'\]",
    ),
    "beta_sd_too_large": (
        lambda r: r["variables"].update({"v": _var({"type": "beta", "mean": 0.5, "sd": 0.6})}),
        "variables.v.distribution.sd",
        r"too large.*allowed: sd < 0.5",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_bad_spec_names_file_and_key(tmp_path, case):
    edit, key, pattern = BAD_SPECS[case]
    path = _write(tmp_path, _mutate(edit), f"{case}.yaml")
    with pytest.raises(cohorts.CohortSpecError, match=pattern) as info:
        cohorts.load_spec(path)
    assert info.value.key == key
    assert str(path) in str(info.value) and repr(key) in str(info.value)


def test_low_acceptance_reports_rate(tmp_path):
    raw = _base_spec()
    raw["criteria"]["inclusion"] = [{"expr": "x > 15", "source": "t"}]  # P = 0.62 %
    spec = cohorts.load_spec(_write(tmp_path, raw, "narrow.yaml"))
    with pytest.raises(cohorts.CohortSpecError) as info:
        cohorts.sample(spec, 10, seed=1)
    msg = str(info.value)
    assert info.value.key == "criteria" and "narrow.yaml" in msg
    rate = float(msg.split("criteria accept ")[1].split("%")[0]) / 100
    assert abs(rate - (1 - 0.5 * math.erfc(-2.5 / math.sqrt(2)))) < 0.0025
    assert "allowed: at least 1%" in msg and "inclusion 'x > 15'" in msg


def test_dict_spec_uses_source_label():
    raw = _mutate(lambda r: r["variables"]["x"]["distribution"].update({"sd": 0}))
    with pytest.raises(cohorts.CohortSpecError, match=r"^trial.yaml#population: key"):
        cohorts.load_spec(raw, source_file="trial.yaml#population")


def test_repair_gives_nearest_positive_definite_matrix():
    bad = [[1, 0.9, -0.9], [0.9, 1, 0.9], [-0.9, 0.9, 1]]
    raw = _base_spec()
    _add_block(raw, bad, repair=True)
    spec = cohorts.load_spec(raw)
    block = spec.copulas[1]
    assert block.repaired and not spec.copulas[0].repaired
    fixed = block.target[None]
    assert np.linalg.eigvalsh(fixed).min() > 0
    np.testing.assert_allclose(np.diag(fixed), 1.0)
    np.testing.assert_array_equal(np.sign(fixed), np.sign(bad))
    # Higham's projection is the closest correlation matrix: no worse than simple shrinkage.
    shrunk = 0.5 * np.asarray(bad) + 0.5 * np.eye(3)
    assert np.linalg.norm(fixed - bad) <= np.linalg.norm(shrunk - bad)
    ds = cohorts.sample(spec, 200, seed=3)
    assert np.isfinite(ds["t"].values).all()


# --------------------------------------------------------------------------- TAVR cohort


def test_tavr_dataset_contract(tavr, tavr_cohort):
    ds = tavr_cohort
    for name in [*TAVR_NAMES, "patient_seed", "sampling_weight"]:
        assert name in ds, name
        for attr in ("units", "long_name", "source"):
            assert ds[name].attrs[attr], (name, attr)
    assert ds["patient"].dtype == np.int64
    np.testing.assert_array_equal(ds["patient"].values, np.arange(ds.sizes["patient"]))
    assert ds["sex"].dtype == np.int8
    assert ds["sex"].attrs["flag_meanings"] == "female male"
    np.testing.assert_array_equal(ds["sex"].attrs["flag_values"], [0, 1])
    assert ds["patient_seed"].dtype == np.uint64
    assert ds["sampling_weight"].dtype == np.float64
    np.testing.assert_array_equal(ds["sampling_weight"].values, 1.0)
    np.testing.assert_array_equal(
        ds["patient_seed"].values, patient_keys(20240601, np.arange(ds.sizes["patient"]))
    )
    assert ds.attrs["spec_name"] == "tavr_severe_as" and ds.attrs["seed"] == 20240601
    assert 0.95 < ds.attrs["acceptance_rate"] <= 1.0
    assert ds.attrs["spec_sha256"] == tavr.sha256


def test_tavr_numbers_match_reference(tavr_cohort):
    df = tavr_cohort.to_dataframe()
    women, men = df[df.sex == 0], df[df.sex == 1]
    # shared/reference/tavr.md: annulus area women 405 +/- 75, men 512 +/- 110 mm2;
    # perimeter 71.8 +/- 7.5 and 80.6 +/- 8.5 mm; BSA 2.0 +/- 0.2 m2; LVEF 55 +/- 10 %;
    # SVI 39 +/- 7 mL/m2; heart rate 70 +/- 12 bpm; age 75-85 yr.
    assert women.annulus_area_mm2.mean() == pytest.approx(405, abs=4)
    assert women.annulus_area_mm2.std() == pytest.approx(75, abs=4)
    assert men.annulus_area_mm2.mean() == pytest.approx(512, abs=5)
    assert men.annulus_area_mm2.std() == pytest.approx(110, abs=5)
    assert women.annulus_perimeter_mm.mean() == pytest.approx(71.8, abs=0.4)
    assert men.annulus_perimeter_mm.mean() == pytest.approx(80.6, abs=0.4)
    assert df.bsa_m2.mean() == pytest.approx(2.0, abs=0.03)
    assert df.bsa_m2.std() == pytest.approx(0.2, abs=0.025)
    assert men.bsa_m2.mean() > women.bsa_m2.mean() + 0.15
    assert df.lvef_pct.mean() == pytest.approx(55, abs=0.5)
    assert df.svi_ml_m2.mean() == pytest.approx(39, abs=0.4)
    assert df.heart_rate_bpm.mean() == pytest.approx(70, abs=0.5)
    assert 75 <= df.age_yr.median() <= 85 and df.age_yr.between(60, 95).all()
    assert (df.sex == 0).mean() == pytest.approx(0.47, abs=0.015)
    np.testing.assert_allclose(df.bsa_m2, np.sqrt(df.height_cm * df.weight_kg / 3600))
    np.testing.assert_allclose(df.bmi_kg_m2, df.weight_kg / (df.height_cm / 100) ** 2)
    for sub in (women, men):
        assert 0.3 < np.corrcoef(sub.annulus_area_mm2, sub.bsa_m2)[0, 1] < 0.5
    assert ((df.sbp_mmhg - df.dbp_mmhg) >= 20).all()
    assert df.bmi_kg_m2.between(15, 50).all()


def test_sample_start_is_a_slice(tavr):
    whole = cohorts.sample(tavr, 40, seed=9)
    part = cohorts.sample(tavr, 15, seed=9, start=20)
    for name in whole.data_vars:
        np.testing.assert_array_equal(part[name].values, whole[name].values[20:35])
    np.testing.assert_array_equal(part["patient"].values, np.arange(20, 35))
    other = cohorts.sample(tavr, 40, seed=10)
    assert not np.array_equal(other["age_yr"].values, whole["age_yr"].values)


# --------------------------------------------------------------------------- properties


@PROPERTY
@given(n=st.integers(1, 12), seed=st.integers(0, 2**63))
def test_cohort_identical_for_batch_sizes(tmp_path_factory, tavr, n, seed):
    root = tmp_path_factory.mktemp("batches")
    stores = [
        cohorts.write_cohort(tavr, n, root / f"b{b}.zarr", seed=seed, batch_size=b).load()
        for b in (1, 7, 1000)
    ]
    for other in stores[1:]:
        xr.testing.assert_identical(stores[0], other)
    in_memory = cohorts.sample(tavr, n, seed=seed)
    for name in in_memory.data_vars:
        np.testing.assert_array_equal(stores[0][name].values, in_memory[name].values)
    assert stores[0].attrs["acceptance_rate"] == in_memory.attrs["acceptance_rate"]


def _random_correlation(draw, k):
    vecs = np.array(draw(st.lists(st.floats(-1, 1), min_size=k * k, max_size=k * k)))
    vecs = vecs.reshape(k, k) + 1.2 * np.eye(k)
    gram = vecs @ vecs.T
    d = np.sqrt(np.diag(gram))
    return np.round(gram / np.outer(d, d), 3)


@PROPERTY
@given(data=st.data(), kind=st.sampled_from(["spearman", "pearson"]))
def test_correlations_within_sampling_error(data, kind):
    matrix = _random_correlation(data.draw, 3)
    np.fill_diagonal(matrix, 1.0)
    marg = {
        "spearman": [
            {"type": "gamma", "mean": 3, "sd": 2},
            {"type": "beta", "mean": 0.3, "sd": 0.2},
            {"type": "empirical", "probabilities": [0, 0.5, 1], "values": [0, 1, 10]},
        ],
        "pearson": [
            {"type": "normal", "mean": 0, "sd": 1},
            {"type": "normal", "mean": 5, "sd": 3},
            {"type": "normal", "mean": -1, "sd": 0.5},
        ],
    }[kind]
    raw = {
        "name": "corr",
        "variables": {f"v{i}": _var(m) for i, m in enumerate(marg)},
        "copula": [
            {
                "variables": ["v0", "v1", "v2"],
                "kind": kind,
                "matrix": matrix.tolist(),
                "source": "t",
            }
        ],
    }
    spec = cohorts.load_spec(raw)
    ds = cohorts.sample(spec, 4000, seed=data.draw(st.integers(0, 2**32)))
    table = cohorts.compare_to_target(spec, ds)
    corr = table[table.statistic.str.startswith("correlation")]
    assert len(corr) == 3
    assert (corr.z.abs() < 4.5).all(), corr[["variable", "target", "generated", "z"]]


@PROPERTY
@given(
    lo=st.floats(-1.5, 1.0),
    width=st.floats(0.5, 3.0),
    cut=st.floats(-1.0, 2.0),
    seed=st.integers(0, 2**32),
)
def test_criteria_always_hold(lo, width, cut, seed):
    raw = _base_spec()
    raw["criteria"] = {
        "inclusion": [
            {"expr": f"(x - 10) / 2 > {lo} and (x - 10) / 2 < {lo + width}", "source": "t"}
        ],
        "exclusion": [{"expr": f"ratio > {cut} and group == 'a'", "source": "t"}],
    }
    spec = cohorts.load_spec(raw)
    ds = cohorts.sample(spec, 500, seed=seed)
    x, ratio, group = ds["x"].values, ds["ratio"].values, ds["group"].values
    assert np.all(((x - 10) / 2 > lo) & ((x - 10) / 2 < lo + width))
    assert not np.any((ratio > cut) & (group == 0))
    assert 0 < ds.attrs["acceptance_rate"] <= 1
    assert ds.attrs["n_draws"] >= 500


def test_acceptance_rate_matches_probability():
    raw = _base_spec()
    raw["criteria"] = {"inclusion": [{"expr": "x > 12", "source": "t"}]}  # P(Z > 1)
    ds = cohorts.sample(cohorts.load_spec(raw), 20_000, seed=4)
    p = 0.5 * math.erfc(1 / math.sqrt(2))
    assert ds.attrs["acceptance_rate"] == pytest.approx(p, abs=4 * math.sqrt(p * (1 - p) / 1e5))


# --------------------------------------------------------------------------- marginals


def test_every_distribution_family_matches_its_target():
    raw = {
        "name": "families",
        "variables": {
            "n": _var({"type": "normal", "mean": 1, "sd": 2}),
            "t": _var({"type": "truncnorm", "mean": 0, "sd": 1, "lower": -0.5, "upper": 2}),
            "l": _var({"type": "lognormal", "mean": 4, "sd": 3}),
            "g": _var({"type": "gamma", "mean": 2, "sd": 1.5}),
            "b": _var({"type": "beta", "mean": 20, "sd": 5, "lower": 10, "upper": 40}),
            "u": _var({"type": "uniform", "lower": -3, "upper": 5}),
            "c": _var(
                {
                    "type": "categorical",
                    "categories": ["p", "q", "r"],
                    "probabilities": [0.2, 0.3, 0.5],
                }
            ),
            "e": _var(
                {"type": "empirical", "probabilities": [0, 0.1, 0.9, 1], "values": [0, 1, 2, 10]}
            ),
            "d": _var(
                {
                    "p": {
                        "type": "categorical",
                        "categories": ["y", "n"],
                        "probabilities": [0.9, 0.1],
                    },
                    "q": {
                        "type": "categorical",
                        "categories": ["y", "n"],
                        "probabilities": [0.5, 0.5],
                    },
                    "r": {
                        "type": "categorical",
                        "categories": ["y", "n"],
                        "probabilities": [0.1, 0.9],
                    },
                },
                given="c",
            ),
        },
    }
    spec = cohorts.load_spec(raw)
    ds = cohorts.sample(spec, 20_000, seed=11)
    table = cohorts.compare_to_target(spec, ds)
    assert set(table.variable) >= set("ntlgbuced")
    bad = table[table.z.abs() > 4.5]
    assert bad.empty, bad
    assert ds["t"].values.min() >= -0.5 and ds["t"].values.max() <= 2
    assert ds["b"].values.min() >= 10 and ds["b"].values.max() <= 40
    assert ds["c"].dtype == np.int8 and ds["d"].attrs["flag_meanings"] == "y n"


# --------------------------------------------------------------------------- oversampling


def test_oversampling_weights_recover_population():
    raw = _base_spec()
    del raw["criteria"]
    raw["oversample"] = [{"name": "high_x", "where": "x > 12", "factor": 4, "source": "t"}]
    raw["targets"] = [
        {
            "statistic": "proportion",
            "where": "x > 12",
            "value": 0.5 * math.erfc(1 / math.sqrt(2)),
            "source": "normal tail",
        }
    ]
    spec = cohorts.load_spec(raw)
    ds = cohorts.sample(spec, 20_000, seed=5)
    hit = ds["x"].values > 12
    p = 0.5 * math.erfc(1 / math.sqrt(2))
    assert hit.mean() == pytest.approx(4 * p / (4 * p + 1 - p), abs=0.015)
    np.testing.assert_array_equal(ds["sampling_weight"].values, np.where(hit, 0.25, 1.0))
    table = cohorts.compare_to_target(spec, ds)
    row = table[(table.statistic == "proportion") & (table.variable == "x > 12")].iloc[0]
    assert abs(row.generated - p) < 0.01 and abs(row.z) < 4.5
    x_mean = table[(table.variable == "x") & (table.statistic == "mean")].iloc[0]
    assert abs(x_mean.z) < 4.5  # weighted mean of x is the population mean
    from credibility.tables import representation_table

    rep = representation_table(
        ds, [{"label": "x band", "variable": "x", "edges": [12], "source": "s"}]
    )
    assert rep.weighted_share_pct.sum() == pytest.approx(100.0)
    assert rep.share_pct.sum() == pytest.approx(100.0)


# --------------------------------------------------------------------------- checks


def test_compare_to_target_columns_and_explicit_targets(tavr, tavr_cohort):
    table = cohorts.compare_to_target(tavr, tavr_cohort)
    assert list(table.columns) == [
        "variable",
        "subgroup",
        "statistic",
        "target",
        "generated",
        "difference",
        "smd",
        "se",
        "z",
        "n",
        "n_eff",
        "units",
        "source",
    ]
    bsa = table[(table.variable == "bsa_m2") & (table.statistic == "mean")].iloc[0]
    assert bsa.target == 2.0 and bsa.source.startswith("tavr.md")
    assert abs(bsa.smd) < 0.1
    women = table[table.variable == "sex == 'female'"].iloc[0]
    assert women.target == pytest.approx(0.47)
    area = table[
        (table.variable == "annulus_area_mm2")
        & (table.subgroup == "sex == 'male'")
        & (table.statistic == "mean")
    ].iloc[0]
    assert area.target == pytest.approx(512) and abs(area.z) < 4.5
    corr = table[table.statistic == "correlation_spearman"]
    assert len(corr) == 12 and (corr.z.abs() < 4.5).all()
    np.testing.assert_allclose(table.difference, table.generated - table.target)


def test_representation_table_bands_from_the_trial_config(tavr_cohort):
    from credibility.tables import representation_table

    subgroups = [
        {"label": "sex", "variable": "sex", "source": "s"},
        {"label": "age", "variable": "age_yr", "edges": [75, 85], "source": "s"},
        {"label": "annulus", "variable": "annulus_area_mm2", "edges": [430], "right": True,
         "labels": ["small", "large"], "source": "SMART"},
    ]  # fmt: skip
    rep = representation_table(tavr_cohort, subgroups)
    assert list(rep["subgroup"].unique()) == ["sex", "age", "annulus"]
    for _, group in rep.groupby("subgroup"):
        assert group.n.sum() == tavr_cohort.sizes["patient"]
        assert group.weighted_share_pct.sum() == pytest.approx(100.0)
    df = tavr_cohort.to_dataframe()
    small = rep[(rep.subgroup == "annulus") & (rep.level == "small")]
    assert int(small.n.iloc[0]) == (df.annulus_area_mm2 <= 430).sum()
    assert (rep.loc[rep.subgroup == "annulus", "source"] == "SMART").all()
    assert set(rep.loc[rep.subgroup == "sex", "level"]) == {"female", "male"}


def test_plot_check_writes_png(tmp_path, tavr, tavr_cohort):
    path = cohorts.plot_check(tavr, tavr_cohort.isel(patient=slice(0, 3000)), tmp_path / "c.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000


def test_write_cohort_store(tmp_path, tavr):
    ds = cohorts.write_cohort(tavr, 2500, tmp_path / "cohort.zarr", seed=3, batch_size=1000)
    assert ds["age_yr"].chunks == ((1000, 1000, 500),)  # lazily opened, one chunk per batch
    mem = cohorts.sample(tavr, 2500, seed=3)
    assert ds.attrs["n_draws"] == mem.attrs["n_draws"]
    assert ds.attrs["acceptance_rate"] == mem.attrs["acceptance_rate"]
    assert set(ds.data_vars) == set(mem.data_vars)
    for name in mem.data_vars:
        assert ds[name].attrs["units"] == mem[name].attrs["units"]
        np.testing.assert_array_equal(ds[name].values, mem[name].values)
    reopened = xr.open_zarr(tmp_path / "cohort.zarr")
    assert reopened.attrs["spec_sha256"] == tavr.sha256


def test_load_spec_roundtrip_of_shipped_spec(tavr):
    raw = copy.deepcopy(tavr.raw)
    again = cohorts.load_spec(raw, source_file="copy")
    assert again.sha256 == tavr.sha256 and again.source_file == "copy"
    assert set(TAVR_NAMES) == set(tavr.names)
    with pytest.raises(FileNotFoundError, match="available: .*tavr_severe_as"):
        cohorts.population_path("nope")


# --------------------------------------------------------------------------- bad inputs


def test_non_finite_derived_variable_stops_generation(tmp_path):
    raw = _base_spec()
    raw["derived"]["huge"] = {
        "expr": "x ** 10 ** 10",
        "long_name": "overflow",
        "units": "1",
        "source": "test",
    }
    spec = cohorts.load_spec(_write(tmp_path, raw, "overflow.yaml"))
    with pytest.raises(cohorts.CohortSpecError) as info:
        cohorts.sample(spec, 50, seed=1)
    msg = str(info.value)
    assert info.value.key == "derived.huge.expr" and "overflow.yaml" in msg
    assert re.search(r"'x \*\* 10 \*\* 10' is not finite \(inf or nan.*for \d+ of \d+", msg)
    del raw["criteria"]  # no pilot: caught while generating, counted among the batch
    spec = cohorts.load_spec(raw)
    with pytest.raises(cohorts.CohortSpecError, match=r"for 50 of 50 patients accepted"):
        cohorts.sample(spec, 50, seed=1)


def test_criteria_that_nobody_meets(tmp_path):
    raw = _base_spec()
    raw["criteria"]["exclusion"] = [{"expr": "x > -100", "source": "t"}]
    spec = cohorts.load_spec(_write(tmp_path, raw, "nobody.yaml"))
    with pytest.raises(cohorts.CohortSpecError) as info:
        cohorts.write_cohort(spec, 10, tmp_path / "c.zarr", seed=1)
    msg = str(info.value)
    assert info.value.key == "criteria" and "nobody.yaml" in msg
    assert "no patient meets the inclusion/exclusion criteria" in msg
    assert "exclusion 'x > -100' keeps 0 of 10000" in msg


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (b"the quick brown fox\njumps over the lazy dog\n", "a single text value"),
        (b"- a\n- b\n", "a list"),
        (b"", "an empty document"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "not a text file"),
        (b"name: [x\nvariables: 1\n", "not valid YAML at line 2"),
    ],
)
def test_spec_file_that_is_not_a_spec(tmp_path, content, detail):
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    with pytest.raises(cohorts.CohortSpecError) as info:
        cohorts.load_spec(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: key '<")
    assert detail in msg and "population spec" in msg
    assert "fox" not in msg and "\n" not in msg


def test_cohort_command_one_line_errors(tmp_path, capsys):
    from isct.cli import main

    raw = _base_spec()
    raw["derived"]["huge"] = {
        "expr": "exp(x * 1000)",
        "long_name": "o",
        "units": "1",
        "source": "t",
    }
    bad = _write(tmp_path, raw, "overflow.yaml")
    text = tmp_path / "readme.txt"
    text.write_text("This is not a population spec.\nIt is prose.\n")
    for argv, pattern in [
        ([str(bad), "--n", "0"], r"--n must be a positive number of patients, got 0"),
        ([str(bad), "--n", "5"], r"key 'derived.huge.expr': huge = 'exp\(x \* 1000\)' is not"),
        ([str(text), "--n", "5"], r"readme.txt: key '<document>': the document is a single"),
    ]:
        code = main(["cohort", *argv, "--seed", "1", "--out", str(tmp_path / "c.zarr")])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
        assert re.search(pattern, err), err
        assert "prose" not in err
