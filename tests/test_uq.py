"""Tests of credibility.uq: MC and PCE propagation, per-patient intervals, trial outcomes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from credibility import uq
from credibility.uq import problem_from_config, propagate, trial_outcome

PI = np.pi
# Ishigami a=7, b=0.1: mean a/2, variance a^2/8 + b pi^4/5 + b^2 pi^8/18 + 1/2
# (Ishigami & Homma 1990, doi:10.1109/ISUMA.1990.151285).
ISHIGAMI_MEAN = 3.5
ISHIGAMI_VAR = 49 / 8 + 0.1 * PI**4 / 5 + 0.01 * PI**8 / 18 + 0.5


def ishigami_problem():
    return problem_from_config(
        {"parameters": {f"x{i}": {"dist": "uniform", "low": -PI, "high": PI} for i in (1, 2, 3)}}
    )


def ishigami(X):
    return {
        "y": np.sin(X[:, 0]) + 7.0 * np.sin(X[:, 1]) ** 2 + 0.1 * X[:, 2] ** 4 * np.sin(X[:, 0])
    }


def correlated_normal_problem(rho=0.5):
    return problem_from_config(
        {
            "parameters": {
                "eoa_scale": {"dist": "normal", "mean": 1.0, "sd": 0.05},
                "aorta_diameter_mm": {"dist": "normal", "mean": 32.0, "sd": 2.0, "units": "mm"},
            },
            "correlation": {"eoa_scale": {"aorta_diameter_mm": rho}},
        }
    )


def test_pce_collocation_ishigami_loo_below_one_percent():
    ds = propagate(ishigami_problem(), ishigami, method="pce_collocation", n=600, seed=1)
    assert float(ds["loo_error"].sel(output="y")) < 0.01
    assert float(ds["mean"].sel(output="y")) == pytest.approx(ISHIGAMI_MEAN, rel=1e-3)
    assert float(ds["std"].sel(output="y")) ** 2 == pytest.approx(ISHIGAMI_VAR, rel=1e-3)
    assert ds.attrs["order"][0] >= 8


def test_pce_spectral_ishigami_moments():
    X = uq.sample(ishigami_problem(), None, seed=None, method="pce_spectral", order=9)
    assert X.shape == (10**3, 3)
    ds = uq.analyze(ishigami_problem(), X, ishigami(X), seed=2, method="pce_spectral", order=9)
    assert float(ds["mean"].sel(output="y")) == pytest.approx(ISHIGAMI_MEAN, rel=1e-6)
    assert float(ds["std"].sel(output="y")) ** 2 == pytest.approx(ISHIGAMI_VAR, rel=1e-3)
    assert float(ds["loo_error"].sel(output="y")) < 0.01
    # quantiles of the surrogate agree with a large Monte Carlo of the model itself
    Xmc = ishigami_problem().sample(200_000, seed=5)
    q_mc = np.quantile(ishigami(Xmc)["y"], [0.025, 0.5, 0.975])
    q = ds["quantiles"].sel(output="y", quantile=[0.025, 0.5, 0.975]).values
    np.testing.assert_allclose(q, q_mc, atol=0.15)


def test_mc_linear_model_intervals_match_normal_theory():
    p = correlated_normal_problem(rho=0.5)
    coef = np.array([10.0, 0.5])
    ds = propagate(p, lambda X: {"g": X @ coef}, method="mc", n=40_000, seed=3, level=0.9)
    ds = ds.sel(output="g")
    var = (10 * 0.05) ** 2 + (0.5 * 2) ** 2 + 2 * 0.5 * 10 * 0.5 * 0.05 * 2
    mean = 10 + 16
    sd = np.sqrt(var)
    assert float(ds["mean"]) == pytest.approx(mean, abs=4 * float(ds["mean_se"]))
    assert float(ds["std"]) == pytest.approx(sd, rel=0.02)
    z = stats.norm.ppf(0.95)
    assert float(ds["pi_lower"]) == pytest.approx(mean - z * sd, abs=0.03)
    assert float(ds["pi_upper"]) == pytest.approx(mean + z * sd, abs=0.03)


def test_correlated_pce_through_the_nataf_germ_is_exact_for_linear_models():
    rho = 0.7
    p = correlated_normal_problem(rho)
    X = p.sample(20_000, seed=4)
    assert np.corrcoef(X.T)[0, 1] == pytest.approx(rho, abs=0.02)
    ds = propagate(p, lambda X: {"g": X @ [10.0, 0.5]}, method="pce_collocation", n=32, seed=1)
    ds = ds.sel(output="g")
    sd = np.sqrt(0.5**2 + 1.0**2 + 2 * rho * 0.5 * 1.0)
    assert float(ds["std"]) == pytest.approx(sd, rel=1e-6)
    assert float(ds["loo_error"]) < 1e-12


def per_patient_model(n_patients=40, seed=0):
    """Gradient-like output per patient: g_pj = base_j * eoa_scale^-2 (mmHg)."""
    base = np.random.default_rng(seed).uniform(5.0, 25.0, n_patients)

    def evaluate(X):
        g = base[None, :] * X[:, [0]] ** -2.0
        g[:3, 0] = np.nan  # a solver failure for patient 0 in three parameter samples
        return {"gradient_mmhg": g}

    return base, evaluate


def test_per_patient_prediction_intervals_and_population_outcome():
    p = problem_from_config(
        {"parameters": {"eoa_scale": {"dist": "uniform", "low": 0.8, "high": 1.2}}}
    )
    base, evaluate = per_patient_model()
    threshold = 20.0
    ds = propagate(
        p,
        evaluate,
        method="mc",
        n=4000,
        seed=7,
        dims=("patient",),
        level=0.9,
        events={"high_gradient": lambda y: y["gradient_mmhg"] > threshold},
        n_boot=200,
    )
    assert ds["pi_lower"].dims == ("output", "patient")
    # exact per-patient interval: g = base / s^2 is decreasing in s ~ U(0.8, 1.2)
    exact_lo = base / 1.18**2
    exact_hi = base / 0.82**2
    np.testing.assert_allclose(ds["pi_lower"].sel(output="gradient_mmhg"), exact_lo, rtol=0.01)
    np.testing.assert_allclose(ds["pi_upper"].sel(output="gradient_mmhg"), exact_hi, rtol=0.01)
    assert int(ds["n_nonfinite"].sel(output="gradient_mmhg", patient=0)) == 3
    # population proportion: patient j has the event when s < sqrt(base_j / threshold)
    p_j = np.clip((np.sqrt(base / threshold) - 0.8) / 0.4, 0, 1)
    out = ds.sel(outcome="high_gradient")
    assert float(out["outcome_proportion"]) == pytest.approx(p_j.mean(), abs=0.01)
    lo, hi = float(out["outcome_lower"]), float(out["outcome_upper"])
    assert lo < float(out["outcome_parameter_lower"]) or hi > float(out["outcome_parameter_upper"])
    assert lo <= float(out["outcome_sampling_lower"]) and hi >= float(out["outcome_sampling_upper"])


def test_trial_outcome_sampling_only_matches_binomial():
    n_patients, p_true = 400, 0.3
    events = np.zeros((50, n_patients))
    events[:, : int(p_true * n_patients)] = 1.0  # no parameter uncertainty: rows identical
    ds = trial_outcome(events, seed=1, n_boot=4000).sel(output="event")
    half = stats.norm.ppf(0.975) * np.sqrt(p_true * (1 - p_true) / n_patients)
    assert float(ds["lower"]) == pytest.approx(p_true - half, abs=0.01)
    assert float(ds["upper"]) == pytest.approx(p_true + half, abs=0.01)
    assert float(ds["parameter_lower"]) == float(ds["parameter_upper"]) == pytest.approx(p_true)


def test_trial_outcome_weights_and_arms():
    rng = np.random.default_rng(2)
    S, P = 30, 200
    events = (rng.random((S, P, 2)) < [0.2, 0.5]).astype(float)
    w = np.where(np.arange(P) < 100, 3.0, 1.0)
    ds = trial_outcome({"ppm": events}, weights=w, seed=1, dims=("arm",), n_boot=100)
    assert ds["proportion"].dims == ("output", "arm")
    expected = (events * w[None, :, None]).sum(axis=1) / w.sum()
    np.testing.assert_allclose(ds["proportion"].sel(output="ppm"), expected.mean(axis=0))
    np.testing.assert_allclose(
        ds["proportion_samples"].sel(output="ppm").transpose("sample", "arm"), expected
    )
    assert np.all(ds["lower"] < ds["proportion"]) and np.all(ds["proportion"] < ds["upper"])
    with pytest.raises(ValueError, match="weights must be"):
        trial_outcome(events, weights=np.ones(3), seed=1)


def test_pce_events_use_surrogate_predictions():
    p = problem_from_config(
        {"parameters": {"eoa_scale": {"dist": "uniform", "low": 0.8, "high": 1.2}}}
    )
    base = np.array([10.0, 15.0, 19.0, 30.0])

    def evaluate(X):
        return {"gradient_mmhg": base[None, :] * X[:, [0]] ** -2.0}

    ds = propagate(
        p,
        evaluate,
        method="pce_collocation",
        n=64,
        seed=3,
        dims=("patient",),
        events={"high": lambda y: y["gradient_mmhg"] > 20.0},
        n_outcome_samples=4000,
        n_boot=50,
    )
    p_j = np.clip((np.sqrt(base / 20.0) - 0.8) / 0.4, 0, 1)
    assert float(ds["outcome_proportion"].sel(outcome="high")) == pytest.approx(
        p_j.mean(), abs=0.02
    )
    assert np.all(ds["loo_error"] < 1e-6)


def test_uq_errors():
    p = ishigami_problem()
    with pytest.raises(ValueError, match="allowed: mc, pce_collocation, pce_spectral"):
        uq.sample(p, 10, seed=1, method="sparse")
    with pytest.raises(ValueError, match="needs order"):
        uq.sample(p, None, seed=1, method="pce_spectral")
    X = p.sample(20, seed=1)
    with pytest.raises(ValueError, match="quadrature nodes"):
        uq.analyze(p, X, ishigami(X), seed=1, method="pce_spectral", order=3)
    with pytest.raises(ValueError, match="has 19 rows but X has 20"):
        uq.analyze(p, X, {"y": np.zeros(19)}, seed=1)


def test_results_round_trip_through_zarr(tmp_path):
    import xarray as xr

    from credibility.sensitivity import run

    p = ishigami_problem()

    def evaluate(X):
        y = ishigami(X)["y"]
        return {"y": y, "g": np.stack([y, 2 * y], axis=1)}

    u = propagate(
        p,
        evaluate,
        method="pce_collocation",
        n=120,
        seed=1,
        dims=("patient",),
        events={"high": lambda y: y["g"] > 5.0},
        n_outcome_samples=200,
        n_boot=20,
    )
    s = run(
        p,
        evaluate,
        method="pce",
        n=100,
        seed=1,
        dims=("patient",),
        analyze_options={"num_resamples": 5},
    )
    for name, ds in (("uq", u), ("sa", s)):
        ds.to_zarr(tmp_path / f"{name}.zarr", mode="w", consolidated=False)
        back = xr.open_zarr(tmp_path / f"{name}.zarr", consolidated=False).load()
        xr.testing.assert_identical(back, ds)
