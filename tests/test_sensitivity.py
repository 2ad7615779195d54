"""Known-answer tests of credibility.sensitivity (Ishigami, Sobol G, linear Gaussian Shapley)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from credibility.sensitivity import (
    UncertaintySpecError,
    delta,
    fast,
    morris,
    pawn,
    pce,
    plot_convergence,
    plot_indices,
    problem_from_config,
    rbd,
    run,
    shapley,
    sobol,
)

PI = np.pi
# Ishigami a=7, b=0.1: analytic indices (Ishigami & Homma 1990; Sobol' & Levitan 1999).
ISHIGAMI_S1 = np.array([0.3139, 0.4424, 0.0])
ISHIGAMI_ST = np.array([0.5576, 0.4424, 0.2437])
# Shapley effects of independent inputs: Sh_i = sum over u containing i of S_u / |u|
# (Owen 2014); the only interaction of Ishigami is S13 = ST3.
ISHIGAMI_SH = np.array([0.3139 + 0.2437 / 2, 0.4424, 0.2437 / 2])


def ishigami_problem():
    return problem_from_config(
        {"parameters": {f"x{i}": {"dist": "uniform", "low": -PI, "high": PI} for i in (1, 2, 3)}},
        source="ishigami.yaml",
    )


def ishigami(X):
    return np.sin(X[:, 0]) + 7.0 * np.sin(X[:, 1]) ** 2 + 0.1 * X[:, 2] ** 4 * np.sin(X[:, 0])


G_A = np.array([0.0, 0.5, 3.0, 9.0, 99.0, 99.0])


def g_problem():
    return problem_from_config(
        {"parameters": {f"x{i}": {"dist": "uniform", "low": 0, "high": 1} for i in range(6)}}
    )


def g_function(X):
    return np.prod((np.abs(4.0 * X - 2.0) + G_A) / (1.0 + G_A), axis=1)


def g_analytic():
    """Sobol' G indices (Saltelli & Sobol' 1995, doi:10.1016/0951-8320(95)00099-2)."""
    v = 1.0 / (3.0 * (1.0 + G_A) ** 2)
    V = np.prod(1.0 + v) - 1.0
    S1 = v / V
    ST = v * np.array([np.prod(np.delete(1.0 + v, i)) for i in range(len(v))]) / V
    return S1, ST


def test_saltelli_recovers_ishigami_within_0_02():
    p = ishigami_problem()
    X = sobol.sample(p, 2**13, seed=11)
    ds = sobol.analyze(p, X, {"y": ishigami(X)}, seed=1, num_resamples=50)
    assert ds["S1"].dims == ("output", "parameter")
    np.testing.assert_allclose(ds["S1"].sel(output="y"), ISHIGAMI_S1, atol=0.02)
    np.testing.assert_allclose(ds["ST"].sel(output="y"), ISHIGAMI_ST, atol=0.02)
    s2 = ds["S2"].sel(output="y")
    assert abs(float(s2.sel(parameter="x1", parameter_j="x3")) - 0.2437) < 0.05
    assert abs(float(s2.sel(parameter="x1", parameter_j="x2"))) < 0.05
    assert ds.attrs["n_evaluations"] == 2**13 * 8
    assert "doi" in ds.attrs["citation"]


def test_pce_recovers_ishigami_within_0_01_with_small_loo():
    p = ishigami_problem()
    X = pce.sample(p, 500, seed=3)
    ds = pce.analyze(p, X, {"y": ishigami(X)}, seed=1, num_resamples=10)
    np.testing.assert_allclose(ds["S1"].sel(output="y"), ISHIGAMI_S1, atol=0.01)
    np.testing.assert_allclose(ds["ST"].sel(output="y"), ISHIGAMI_ST, atol=0.01)
    assert float(ds["S2"].sel(output="y", parameter="x1", parameter_j="x3")) == pytest.approx(
        0.2437, abs=0.01
    )
    assert float(ds["loo_error"].sel(output="y")) < 0.01
    assert (ds["S1_conf"] >= 0).all()


def test_saltelli_recovers_sobol_g():
    p = g_problem()
    S1, ST = g_analytic()
    X = sobol.sample(p, 2**12, seed=5, calc_second_order=False)
    ds = sobol.analyze(p, X, g_function(X), seed=2, calc_second_order=False, num_resamples=50)
    np.testing.assert_allclose(ds["S1"].sel(output="y"), S1, atol=0.03)
    np.testing.assert_allclose(ds["ST"].sel(output="y"), ST, atol=0.03)
    assert "S2" not in ds


def test_fast_and_rbd_recover_ishigami_first_order():
    p = ishigami_problem()
    X = fast.sample(p, 1025, seed=4)
    ds = fast.analyze(p, X, ishigami(X), seed=1, num_resamples=20)
    np.testing.assert_allclose(ds["S1"].sel(output="y"), ISHIGAMI_S1, atol=0.03)
    np.testing.assert_allclose(ds["ST"].sel(output="y"), ISHIGAMI_ST, atol=0.05)
    X = rbd.sample(p, 4000, seed=4)
    ds = rbd.analyze(p, X, ishigami(X), seed=1, num_resamples=20)
    np.testing.assert_allclose(ds["S1"].sel(output="y"), ISHIGAMI_S1, atol=0.04)


def test_morris_ranks_sobol_g_inputs_by_importance():
    p = g_problem()
    X = morris.sample(p, 60, seed=8)
    ds = morris.analyze(p, X, g_function(X), seed=1, num_resamples=20)
    mu_star = ds["mu_star"].sel(output="y").values
    assert np.all(np.diff(mu_star[:4]) < 0)  # a = 0, 0.5, 3, 9: decreasing importance
    assert mu_star[4:].max() < 0.05 * mu_star[0]


def linear_gaussian_closed_form(beta, sigma, rho):
    """Iooss & Prieur (2019), Sec. 3.1: X1 independent, corr(X2, X3) = rho."""
    b1, b2, b3 = beta
    s1, s2, s3 = sigma
    var = b1**2 * s1**2 + b2**2 * s2**2 + b3**2 * s3**2 + 2 * rho * b2 * b3 * s2 * s3
    sh1 = b1**2 * s1**2
    sh2 = b2**2 * s2**2 + rho * b2 * b3 * s2 * s3 + rho**2 * (b3**2 * s3**2 - b2**2 * s2**2) / 2
    sh3 = b3**2 * s3**2 + rho * b2 * b3 * s2 * s3 + rho**2 * (b2**2 * s2**2 - b3**2 * s3**2) / 2
    return np.array([sh1, sh2, sh3]) / var


def test_shapley_linear_gaussian_matches_closed_form():
    beta, sigma, rho = np.array([1.0, 1.5, -0.5]), np.array([1.0, 2.0, 3.0]), 0.6
    p = problem_from_config(
        {
            "parameters": {
                f"x{i + 1}": {"dist": "normal", "mean": 10.0 * i, "sd": float(sigma[i])}
                for i in range(3)
            },
            "correlation": {"x2": {"x3": rho}},
        }
    )
    exact = linear_gaussian_closed_form(beta, sigma, rho)
    cov = np.diag(sigma) @ p.correlation @ np.diag(sigma)
    np.testing.assert_allclose(shapley.linear_gaussian_effects(beta, cov), exact, rtol=1e-12)
    X = shapley.sample(p, 3000, seed=21)
    ds = shapley.analyze(p, X, {"y": X @ beta}, seed=3, num_resamples=50)
    sh = ds["Sh"].sel(output="y").values
    np.testing.assert_allclose(sh, exact, atol=0.03)
    assert sh.sum() == pytest.approx(1.0)
    conf = ds["Sh_conf"].sel(output="y").values
    assert np.all(np.abs(sh - exact) < 3 * conf)  # 3 half-widths: a loose coverage check


def test_shapley_of_independent_ishigami():
    p = ishigami_problem()
    X = shapley.sample(p, 1500, seed=2)
    ds = shapley.analyze(p, X, ishigami(X), seed=1, num_resamples=20)
    np.testing.assert_allclose(ds["Sh"].sel(output="y"), ISHIGAMI_SH, atol=0.04)


def correlated_cohort(n, seed):
    rng = np.random.default_rng(seed)
    z = rng.multivariate_normal(np.zeros(3), [[1, 0.8, 0], [0.8, 1, 0], [0, 0, 1]], size=n)
    df = pd.DataFrame({"age_yr": 80 + 6 * z[:, 0], "bsa_m2": 1.8 + 0.2 * z[:, 1]})
    df["lvef_pct"] = 55 + 8 * z[:, 2]
    y = 0.5 * df["age_yr"].to_numpy() + rng.normal(0, 0.5, n)
    return df, y


def test_given_data_methods_on_a_correlated_cohort():
    df, y = correlated_cohort(400, seed=1)
    names = ["age_yr", "bsa_m2", "lvef_pct"]
    y_nan = y.copy()
    y_nan[:5] = np.nan  # failed simulations are dropped
    d = delta.analyze(names, df, {"gradient": y_nan}, seed=1, num_resamples=10)
    v = d["delta"].sel(output="gradient").values
    assert v[0] > v[1] > v[2]  # driver > correlated covariate > independent covariate
    assert v[2] < 0.15  # KDE-based delta keeps a small-sample bias (~0.1 at n = 400)
    assert int(d["n_nonfinite"].sel(output="gradient")) == 5
    s1 = d["S1"].sel(output="gradient").values
    assert s1[0] > 0.8 and 0.4 < s1[1] < 0.8  # corr 0.8 carries ~0.64 of the variance
    pw = pawn.analyze(names, df, y, seed=1, num_resamples=10)
    v = pw["PAWN"].sel(output="y").values
    assert v[0] > v[1] > v[2]
    assert np.all(pw["PAWN_conf"].values > 0)


def test_extra_dims_and_failed_columns():
    p = ishigami_problem()
    X = sobol.sample(p, 256, seed=1, calc_second_order=False)
    base = ishigami(X)
    y = np.stack([base, 2 * base + 3.0, base], axis=1)
    y[7, 2] = np.nan  # a solver failure in one time step
    Y = {"y": xr.DataArray(y, dims=("sample", "time"), coords={"time": [0.0, 0.5, 1.0]})}
    ds = sobol.analyze(p, X, Y, seed=1, calc_second_order=False, num_resamples=10)
    assert ds["S1"].dims == ("output", "parameter", "time")
    np.testing.assert_allclose(ds["time"], [0.0, 0.5, 1.0])
    np.testing.assert_allclose(ds["S1"].isel(time=0), ds["S1"].isel(time=1))  # affine invariance
    assert ds["S1"].isel(time=2).isnull().all()
    assert int(ds["n_nonfinite"].isel(output=0, time=2)) == 1


def test_run_stops_when_ci_target_met_and_reuses_rows(tmp_path):
    p = ishigami_problem()
    rows = []

    def evaluate(X):
        rows.append(len(X))
        return {"y": ishigami(X)}

    ds = run(
        p,
        evaluate,
        method="sobol",
        n=128,
        seed=4,
        ci_target=0.15,
        n_max=8192,
        analyze_options={"num_resamples": 50, "calc_second_order": False},
        sample_options={"calc_second_order": False},
    )
    assert ds.attrs["converged"] == 1
    widths = 2 * np.concatenate([ds["S1_conf"].values.ravel(), ds["ST_conf"].values.ravel()])
    assert np.all(widths < 0.15)
    steps = ds.sizes["step"]
    assert steps >= 2
    np.testing.assert_array_equal(ds["n"], 128 * 2 ** np.arange(steps))
    # each doubling evaluates only the new rows of the Sobol' design
    assert sum(rows) == ds["n"].values[-1] * 5 == ds["n_evaluations"].values[-1]
    prev_width = 2 * ds["ST_conf_history"].isel(step=0).max()
    assert float(2 * ds["ST_conf_history"].isel(step=-1).max()) < float(prev_width)
    plot_indices(ds, str(tmp_path / "indices.png"))
    plot_convergence(ds, str(tmp_path / "convergence.png"))
    assert (tmp_path / "indices.png").stat().st_size > 1000
    assert (tmp_path / "convergence.png").stat().st_size > 1000


def test_run_stops_at_n_max_when_not_converged():
    p = ishigami_problem()
    ds = run(
        p,
        lambda X: {"y": ishigami(X)},
        method="rbd",
        n=100,
        seed=1,
        ci_target=1e-6,
        n_max=400,
        analyze_options={"num_resamples": 10},
    )
    assert ds.attrs["converged"] == 0
    np.testing.assert_array_equal(ds["n"], [100, 200, 400])
    with pytest.raises(ValueError, match="allowed: sobol, morris"):
        run(p, lambda X: {"y": ishigami(X)}, method="saltelli", n=8, seed=1)


def test_correlated_problem_rejected_by_independent_methods():
    p = problem_from_config(
        {
            "parameters": {
                "a": {"dist": "normal", "mean": 0, "sd": 1},
                "b": {"dist": "uniform", "low": 0, "high": 1},
            },
            "correlation": {"a": {"b": 0.3}},
        },
        source="trial.yaml",
    )
    for mod in (sobol, morris, fast, rbd, pce):
        with pytest.raises(UncertaintySpecError, match="trial.yaml.*uncertainty.correlation"):
            mod.sample(p, 64, seed=1)


@pytest.mark.parametrize(
    ("block", "pattern"),
    [
        ({"parameters": {"a": {"dist": "weibull"}}}, r"parameters\.a\.dist.*allowed: beta"),
        ({"parameters": {"a": {"dist": "normal", "mean": 1}}}, r"parameters\.a\.sd' is missing"),
        ({"parameters": {"a": {"dist": "normal", "mean": 1, "sd": -1}}}, r"a\.sd' must be > 0"),
        (
            {"parameters": {"a": {"dist": "uniform", "low": 1, "high": 2, "mean": 3}}},
            r"a\.mean' is not allowed.*allowed keys",
        ),
        (
            {
                "parameters": {"a": {"dist": "uniform", "low": 0, "high": 1}},
                "correlation": {"a": {"z": 0.2}},
            },
            r"correlation\.a\.z' names no other parameter",
        ),
        (
            {
                "parameters": {k: {"dist": "normal", "mean": 0, "sd": 1} for k in ("a", "b", "c")},
                "correlation": {"a": {"b": 0.9, "c": 0.9}, "b": {"c": -0.9}},
            },
            "not positive definite",
        ),
        ({"params": {}}, r"uncertainty\.params' is not allowed"),
    ],
)
def test_problem_errors_name_file_key_and_allowed_values(block, pattern):
    with pytest.raises(UncertaintySpecError, match=pattern) as err:
        problem_from_config(block, source="config/trial.yaml")
    assert "config/trial.yaml" in str(err.value)


@settings(max_examples=25, deadline=None)
@given(
    rho=st.floats(-0.9, 0.9),
    seed=st.integers(0, 2**16),
)
def test_germ_transform_round_trip(rho, seed):
    p = problem_from_config(
        {
            "parameters": {
                "a": {"dist": "lognormal", "mu": 0.0, "sigma": 0.3},
                "b": {"dist": "triangular", "low": 0, "mode": 1, "high": 3},
                "c": {"dist": "gamma", "shape": 2.0, "scale": 1.5},
            },
            "correlation": {"a": {"c": rho}},
        }
    )
    X = p.sample(50, seed=seed)
    np.testing.assert_allclose(p.from_germ(p.to_germ(X)), X, rtol=1e-7, atol=1e-9)
    U = p.to_unit(X)
    assert np.all((U > 0) & (U < 1))


def test_pce_indices_equal_chaospy_sens_on_the_same_fit():
    import chaospy

    p = ishigami_problem()
    X = pce.sample(p, 200, seed=9)
    y = ishigami(X)
    ds = pce.analyze(p, X, y, seed=1, order=4, num_resamples=0)
    germ = p.germ
    expansion = chaospy.generate_expansion(4, germ)
    model = chaospy.fit_regression(expansion, X.T, y)
    np.testing.assert_allclose(ds["S1"].sel(output="y"), chaospy.Sens_m(model, germ), atol=1e-8)
    np.testing.assert_allclose(ds["ST"].sel(output="y"), chaospy.Sens_t(model, germ), atol=1e-8)


def test_shapley_random_permutations_for_many_inputs():
    # d = 12 (> the exact-permutation limit): y = sum b_i x_i with an AR(1) correlation
    d = 12
    beta = np.linspace(2.0, 0.2, d)
    R = 0.5 ** np.abs(np.subtract.outer(np.arange(d), np.arange(d)))
    params = {f"x{i}": {"dist": "normal", "mean": 0.0, "sd": 1.0} for i in range(d)}
    corr = {f"x{i}": {f"x{i + 1}": 0.5} for i in range(d - 1)}
    corr |= {f"x{i}": {**corr[f"x{i}"], f"x{i + 2}": 0.25} for i in range(d - 2)}
    p = problem_from_config({"parameters": params, "correlation": corr})
    R[np.abs(np.subtract.outer(np.arange(d), np.arange(d))) > 2] = 0.0
    np.testing.assert_allclose(p.correlation, R)
    with pytest.raises(ValueError, match="use permutations='random'"):
        shapley.sample(p, 10, seed=1)
    X = shapley.sample(p, 1500, seed=6, permutations="random")
    assert X.shape == (1500 * 3 * d, d)
    ds = shapley.analyze(p, X, X @ beta, seed=1, permutations="random", num_resamples=30)
    sh = ds["Sh"].sel(output="y").values
    exact = shapley.linear_gaussian_effects(beta, R)
    assert sh.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(sh, exact, atol=0.03)
    assert np.all(ds["Sh_conf"].values > 0)


@pytest.mark.parametrize(
    ("method", "n"),
    [("sobol", 64), ("morris", 10), ("fast", 80), ("rbd", 200), ("pce", 60), ("shapley", 20)],
)
def test_same_seed_same_indices(method, n):
    p = ishigami_problem()

    def evaluate(X):
        return {"y": ishigami(X)}

    opts = {"num_resamples": 5}
    a = run(p, evaluate, method=method, n=n, seed=42, analyze_options=opts)
    b = run(p, evaluate, method=method, n=n, seed=42, analyze_options=opts)
    xr.testing.assert_identical(a, b)
    assert a.sizes["step"] == 1 and a.attrs["converged"] == 0


@pytest.mark.parametrize("permutations", ["exact", "random"])
def test_shapley_design_of_n_is_a_prefix_of_2n(permutations):
    p = problem_from_config(
        {
            "parameters": {k: {"dist": "normal", "mean": 0, "sd": 1} for k in "abcd"},
            "correlation": {"a": {"b": 0.4}, "c": {"d": -0.3}},
        }
    )
    small = shapley.sample(p, 8, seed=5, permutations=permutations)
    large = shapley.sample(p, 16, seed=5, permutations=permutations)
    np.testing.assert_array_equal(large[: len(small)], small)
    rows = []

    def evaluate(X):
        rows.append(len(X))
        return {"y": X @ [1.0, 2.0, 0.5, -1.0]}

    ds = run(
        p,
        evaluate,
        method="shapley",
        n=8,
        seed=5,
        ci_target=1e-9,
        n_max=32,
        sample_options={"permutations": permutations},
        analyze_options={"num_resamples": 5},
    )
    assert rows == [len(small), len(small), 2 * len(small)]  # only new rows are evaluated
    assert ds.attrs["permutations"] == permutations


@pytest.mark.parametrize("ties", [False, True])
def test_vectorised_pawn_equals_salib_on_every_input_and_slice(ties):
    """Known answer: the all-slices-at-once KS distances give SALib's PAWN median and
    maximum to rounding, ties in the inputs and the output included."""
    from SALib.analyze import pawn as salib_pawn

    rng = np.random.default_rng(0)
    X = rng.normal(size=(997, 4))
    y = X[:, 0] ** 2 + 0.3 * X[:, 1] + rng.normal(size=997)
    if ties:
        X[:, 0], y = np.round(X[:, 0]), np.round(y, 1)
    problem = {"num_vars": 4, "names": list("abcd"), "bounds": [[0, 1]] * 4}
    reference = salib_pawn.analyze(problem, X, y, S=10)
    ours = pawn.ks_slices(X, y, 10)
    np.testing.assert_allclose(ours[0], reference["median"], atol=1e-12)
    np.testing.assert_allclose(ours[1], reference["maximum"], atol=1e-12)


@pytest.mark.parametrize("ties", [False, True])
def test_compiled_delta_equals_salib_estimator(ties):
    """Known answer: the compiled kernel densities give SALib's bias-reduced delta, its
    first-order index and both bootstrap half-widths to 1e-12 on the same resamples (the
    global RNG seeded alike), ties in the inputs and the output included, a constant input
    left NaN."""
    from credibility.sensitivity.delta import _delta_column, salib_delta_column

    rng = np.random.default_rng(3)
    X = rng.normal(size=(613, 4))
    X[:, 3] = 2.0
    y = np.exp(0.5 * X[:, 0]) + 0.4 * X[:, 1] ** 2 + 0.2 * rng.normal(size=613)
    if ties:
        X[:, 0], y = np.round(X[:, 0], 1), np.round(y, 1)
    state = np.random.get_state()  # noqa: NPY002
    try:
        np.random.seed(11)  # noqa: NPY002
        reference = salib_delta_column(X, y, 30, 0.95)
        ours = _delta_column(X, y, list("abcd"), 30, 0.95, np.random.RandomState(11))  # noqa: NPY002
    finally:
        np.random.set_state(state)  # noqa: NPY002
    got = np.stack([ours[k] for k in ("delta", "delta_conf", "S1", "S1_conf")])
    assert np.isnan(got[:, 3]).all() and np.isnan(reference[:, 3]).all()
    np.testing.assert_allclose(got[:, :3], reference[:, :3], rtol=0, atol=1e-12)
    assert got[0, 0] > 0.1 > got[0, 2]  # the influential input ranks first
