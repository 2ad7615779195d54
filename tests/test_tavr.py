"""Tests of the TAVR model: contract, code and calculation verification, deployment physics,
leaflet opening, the virtual echo, follow-up and the model card."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import models.tavr
from models import STATUS, get_model, run_batch
from models.tavr import FAMILIES, TAVRDeviceError, TAVRModel, TAVRSettingsError, echo, select_size
from models.tavr.deployment import deploy
from models.tavr.kernel import RES, windkessel_prescribed_flow
from models.tavr.physiology import (
    DEFAULT_SETTINGS,
    _run_kernel,
    checked_settings,
    personalise,
    random_effects,
    run_device,
    valve_table,
)
from models.tavr.reference_solver import solve_patient_ivp
from models.tavr.verification import (
    observed_order,
    self_convergence,
    time_step_study,
    windkessel_exact,
)

MODEL = TAVRModel()
_PARAM_KEYS = ("period_s", "t_max", "e_max", "e_min", "v_0", "p_la", "r_mv", "z_c", "r_p", "c_p")


def _patients(n: int = 12, seed: int = 3) -> dict[str, np.ndarray]:
    """Covariates around the reference-file cohort means (shared/reference/tavr.md)."""
    rng = np.random.default_rng(seed)
    area = rng.normal(460, 70, n).clip(300, 650)
    return {
        "heart_rate_bpm": rng.normal(70, 8, n).clip(50, 95),
        "bsa_m2": rng.normal(1.9, 0.15, n),
        "bmi_kg_m2": rng.normal(27, 4, n).clip(18, 40),
        "lvef_pct": rng.normal(57, 6, n).clip(40, 70),
        "svi_ml_m2": rng.normal(39, 5, n).clip(28, 50),
        "sbp_mmhg": rng.normal(130, 10, n),
        "dbp_mmhg": rng.normal(70, 6, n),
        "annulus_area_mm2": area,
        "annulus_perimeter_mm": 1.01 * 2 * np.sqrt(np.pi * area),
        "av_calcium_agatston": rng.lognormal(np.log(2500), 0.5, n),
        "patient_seed": rng.integers(0, 2**63, n, dtype=np.uint64),
    }


# ----------------------------------------------------------------------------- devices


def test_sizing_chart_overlaps_choose_larger_valve() -> None:
    area = np.array([300.0, 340.0, 430.0, 545.0, 700.0, 200.0])
    size, off = select_size("balloon_expandable", area, np.full(6, 70.0))
    assert size.tolist() == [20, 23, 26, 29, 29, 20]
    assert off.tolist() == [False, False, False, False, True, True]
    size, _ = select_size("balloon_expandable", area, np.full(6, 70.0), out_of_chart="invalid")
    assert size.tolist()[-2:] == [0, 0]
    perimeter = np.array([60.0, 62.8, 72.3, 90.0])
    size, _ = select_size("self_expanding", np.full(4, 400.0), perimeter)
    assert size.tolist() == [23, 26, 29, 34]


def test_device_errors_name_key_and_allowed_values() -> None:
    with pytest.raises(TAVRDeviceError, match=r"'family' is 'tavi'.*balloon_expandable"):
        MODEL.check({"family": "tavi"}, {})
    with pytest.raises(TAVRDeviceError, match=r"'size_mm' is 24.*\[20, 23, 26, 29\]"):
        MODEL.check({"family": "balloon_expandable", "size_mm": 24}, {})
    with pytest.raises(TAVRDeviceError, match=r"keys \['eoa_scale'\] are unknown"):
        MODEL.check({"family": "balloon_expandable", "eoa_scale": 1.1}, {})
    with pytest.raises(TAVRDeviceError, match=r"'leaflet_position' is 'mid'.*\['intra', 'supra'\]"):
        MODEL.check({"family": "self_expanding", "leaflet_position": "mid"}, {})
    with pytest.raises(TAVRSettingsError, match=r"'measurement' is 'perfect'"):
        MODEL.check({"family": "self_expanding"}, {"measurement": "perfect"})
    with pytest.raises(TAVRSettingsError, match=r"\['dt'\] are unknown"):
        MODEL.check({"family": "self_expanding"}, {"dt": 0.001})


# ------------------------------------------------------------------ code verification


def test_windkessel_matches_closed_form_with_fourth_order() -> None:
    """RK4 on the Windkessel under a prescribed flow vs its analytic solution (order 4)."""
    args = dict(q_mean=250.0, q_amp=250.0, period=0.8, r=1.0, c=1.5, zc=0.08, pc0=60.0)
    errors = []
    for steps in (25, 50, 100, 200):
        num = windkessel_prescribed_flow(*args.values(), steps, 3)
        t = np.linspace(0.0, 3 * args["period"], 3 * steps + 1)
        errors.append(np.max(np.abs(num - windkessel_exact(t, **args))))
    assert errors[-1] < 1e-7
    np.testing.assert_allclose(observed_order(errors), 4.0, atol=0.1)


def test_coupled_kernel_converges_at_its_formal_order_with_valve_events() -> None:
    ev = MODEL.code_verification()
    assert ev["formal_order"] == MODEL.formal_order == 2.0
    assert ev["order_error_abs"] < 0.2
    assert ev["finest_error_rel"] < 1e-4
    assert set(ev["observed_order"]) >= {"V_end", "Pc_end", "stroke_volume", "ejection_time"}
    # Claiming RK4's order 4 for the coupled kernel with its events fails the check.
    wrong = self_convergence(formal_order=4.0)
    assert wrong["order_error_abs"] > 1.5


def test_volume_is_conserved_over_a_cycle() -> None:
    p = _patients(8)
    fit = personalise(p)
    res = fit["results"]
    # Discrete identity: V_end − V_start = ∫Q_mv − ∫Q (linear invariant of RK4).
    np.testing.assert_allclose(
        res[:, RES["v_end"]] - res[:, RES["v_start"]],
        res[:, RES["inflow"]] - res[:, RES["stroke_volume"]],
        atol=1e-9,
    )
    # At periodic steady state mitral inflow = aortic outflow = peripheral outflow + storage.
    s = checked_settings({"steady_tol": 1e-8})
    valve = valve_table(np.full(8, 1.6), s)
    res2, _ = _run_kernel(fit, valve, fit["state"].copy(), 1e-3, s, max_cycles=300)
    assert (res2[:, RES["converged"]] == 1).all()
    sv = res2[:, RES["stroke_volume"]]
    np.testing.assert_allclose(res2[:, RES["inflow"]], sv, rtol=1e-6)
    windkessel_storage = fit["c_p"] * (res2[:, RES["pc_end"]] - res2[:, RES["pc_start"]])
    np.testing.assert_allclose(res2[:, RES["outflow"]] + windkessel_storage, sv, rtol=1e-6)


def test_kernel_matches_lsoda_reference_within_half_percent() -> None:
    p = _patients(3, seed=11)
    fit = personalise(p)
    s = checked_settings({})
    valve = valve_table(np.array([1.4, 1.9, 2.6]), s)
    out, ok = run_device(fit, valve, s)
    steps = np.maximum(np.rint(fit["period_s"] / 1e-3), 8).astype(int)
    rows = np.array(
        [
            solve_patient_ivp(
                {k: fit[k][i] for k in _PARAM_KEYS},
                valve[i],
                fit["state"][i],
                steps_per_cycle=steps[i],
            )
            for i in range(3)
        ]
    )
    from models.tavr.physiology import true_endpoints

    ref = true_endpoints(rows, valve)
    assert ok.all() and (rows[:, RES["converged"]] == 1).all()
    for key in (
        "mean_gradient_true_mmhg",
        "eoa_true_cm2",
        "net_mean_gradient_mmhg",
        "stroke_volume_ml",
        "ejection_time_s",
        "peak_velocity_m_s",
    ):
        np.testing.assert_allclose(out[key], ref[key], rtol=5e-3, err_msg=key)


# ------------------------------------------------------------ calculation verification


def test_time_step_study_gci_is_small() -> None:
    from credibility.verification import gci_oberkampf_roy

    p = _patients(4)
    study = time_step_study(MODEL, p, {"family": "balloon_expandable"}, [4e-3, 2e-3, 1e-3])
    assert study["converged"].all()
    f3, f2, f1 = study["endpoints"]["mean_gradient_mmhg"]
    gci = gci_oberkampf_roy(f1, f2, f3, 2.0, p_formal=MODEL.formal_order)
    assert np.nanmax(gci.to_frame()["gci_fine_pct"]) < 5.0


# ------------------------------------------------------------------ deployment physics


def _deploy(family, size, area, perimeter, calcium=2500.0, depth_z=0.0, **settings):
    s = {**DEFAULT_SETTINGS, **settings}
    n = np.size(area)
    return deploy(
        FAMILIES[family],
        np.full(n, size),
        {
            "annulus_area_mm2": np.atleast_1d(area),
            "annulus_perimeter_mm": np.atleast_1d(perimeter),
            "av_calcium_agatston": np.full(n, calcium),
        },
        {"implant_depth": np.full(n, depth_z), "orifice": np.zeros(n)},
        s,
    )


def test_balloon_expandable_frame_reproduces_the_ct_expansion_it_was_derived_from() -> None:
    # Kazuno 2016: 6.3 % area oversizing over the CT area -> 96.5 % of nominal at mid-frame;
    # with an eccentricity of 0.2 the circularised annulus is 1.3 % larger than the area.
    a_nom = np.pi / 4 * 23.0**2
    area = a_nom / 1.063
    perimeter = np.sqrt(4 * np.pi * area * 1.013)
    geo = _deploy("balloon_expandable", 23, area, perimeter)
    assert geo["frame_expansion_pct"][0] == pytest.approx(96.5, abs=0.3)
    # intra-annular leaflets see the annular expansion
    assert geo["leaflet_expansion_pct"][0] == pytest.approx(geo["frame_expansion_pct"][0])


def test_supra_annular_leaflets_see_a_third_of_the_deficit_and_more_when_deeper() -> None:
    fam = FAMILIES["self_expanding"]
    z_ref = (fam.reference_depth_mm - fam.implant_depth_mm[0]) / fam.implant_depth_mm[1]
    geo = _deploy("self_expanding", 26, 380.0, 66.0, depth_z=z_ref)
    deficit = 1 - np.sqrt(geo["frame_expansion_pct"][0] / 100)
    leaflet = 1 - np.sqrt(geo["leaflet_expansion_pct"][0] / 100)
    assert leaflet == pytest.approx(0.31 * deficit)
    deeper = _deploy("self_expanding", 26, 380.0, 66.0, depth_z=z_ref + 1.0)
    assert deeper["eoa_max_cm2"][0] < geo["eoa_max_cm2"][0]
    # an intra-annular design override of the same frame loses the whole deficit
    intra = deploy(
        models.tavr.devices.family_with({"family": "self_expanding", "leaflet_position": "intra"}),
        np.array([26]),
        {
            "annulus_area_mm2": [380.0],
            "annulus_perimeter_mm": [66.0],
            "av_calcium_agatston": [2500.0],
        },
        {"implant_depth": np.zeros(1), "orifice": np.zeros(1)},
        DEFAULT_SETTINGS,
    )
    assert intra["eoa_max_cm2"][0] < geo["eoa_max_cm2"][0]


def test_undersized_frames_stay_nominal_and_calcium_resists_expansion() -> None:
    big = _deploy("balloon_expandable", 23, 600.0, 88.0)
    assert big["frame_expansion_pct"][0] == pytest.approx(100.0)
    soft = _deploy("balloon_expandable", 26, 440.0, 75.0, calcium=500.0)
    hard = _deploy("balloon_expandable", 26, 440.0, 75.0, calcium=8000.0)
    assert hard["frame_expansion_pct"][0] < soft["frame_expansion_pct"][0] < 100.0
    none = _deploy("balloon_expandable", 26, 440.0, 75.0, calcium=8000.0, calcium_exponent=0.0)
    ref = _deploy("balloon_expandable", 26, 440.0, 75.0, calcium=500.0, calcium_exponent=0.0)
    assert none["frame_expansion_pct"][0] == pytest.approx(ref["frame_expansion_pct"][0])


# ----------------------------------------------------------------------- leaflet opening


def test_effective_orifice_rises_with_flow_and_larger_valves_open_less() -> None:
    p = _patients(6)
    low, high = dict(p), dict(p)
    low["svi_ml_m2"] = np.full(6, 25.0)
    high["svi_ml_m2"] = np.full(6, 50.0)
    s = {"measurement": "exact"}
    out_low = run_batch(MODEL, low, {"family": "balloon_expandable", "size_mm": 26}, s)
    out_high = run_batch(MODEL, high, {"family": "balloon_expandable", "size_mm": 26}, s)
    assert (out_high["eoa_true_cm2"] > out_low["eoa_true_cm2"]).all()
    assert (out_high["eoa_true_cm2"] < out_high["eoa_max_cm2"]).all()
    small = run_batch(MODEL, p, {"family": "balloon_expandable", "size_mm": 20}, s)
    large = run_batch(MODEL, p, {"family": "balloon_expandable", "size_mm": 29}, s)
    opened_small = small["eoa_true_cm2"] / small["eoa_max_cm2"]
    opened_large = large["eoa_true_cm2"] / large["eoa_max_cm2"]
    assert (opened_large < opened_small).all()
    rigid = run_batch(MODEL, p, {"family": "balloon_expandable"}, {**s, "opening_minimum": 1.0})
    np.testing.assert_allclose(rigid["eoa_true_cm2"], rigid["eoa_max_cm2"], rtol=2e-3)


# ------------------------------------------------------------------------- virtual echo


def test_exact_measurement_equals_the_true_values() -> None:
    p = _patients(5)
    out = run_batch(MODEL, p, {"family": "self_expanding"}, {"measurement": "exact"})
    np.testing.assert_allclose(out["eoa_cm2"], out["eoa_true_cm2"], rtol=1e-12)
    np.testing.assert_allclose(
        out["mean_gradient_mmhg"],
        out["mean_gradient_true_mmhg"] * 4 / (0.5 * 1050 / 133.322),
        rtol=1e-9,
    )
    np.testing.assert_array_equal(out["ppm_class"], out["ppm_class_true"])


def test_virtual_echo_bias_and_spread_are_the_declared_ones() -> None:
    n = 20000
    rng = np.random.default_rng(5)
    true = {
        "stroke_volume_ml": np.full(n, 80.0),
        "vti_cm": np.full(n, 40.0),
        "mean_v2": np.full(n, 2.0),
        "peak_velocity_m_s": np.full(n, 2.0),
    }
    seeds = rng.integers(0, 2**63, n, dtype=np.uint64)
    effects = random_effects(seeds)
    s = checked_settings({})
    m = echo.measure(true, {"bsa_m2": np.full(n, 2.0), "bmi_kg_m2": np.full(n, 25.0)}, effects, s)
    ratio = m["eoa_cm2"] / (80.0 / 40.0)
    assert np.median(ratio) == pytest.approx(0.83, rel=0.02)
    mg = m["mean_gradient_mmhg"] / (4 * 2.0)
    assert np.std(np.sqrt(mg)) == pytest.approx(s["jet_vti_cv"], rel=0.05)
    # jet and LVOT VTI reading errors correlated as declared
    z = np.corrcoef(np.sqrt(mg), m["stroke_volume_echo_ml"] / (80 * 0.83))[0, 1]
    assert 0.2 < z < 0.5


def test_ppm_class_uses_varc3_bmi_thresholds() -> None:
    eoai = np.array([0.75, 0.75, 0.60, 0.60, 0.90])
    bmi = np.array([25.0, 32.0, 25.0, 32.0, 25.0])
    assert echo.ppm_class(eoai, bmi).tolist() == [1, 0, 2, 1, 0]
    assert MODEL.outputs["ppm_class"].attrs["flag_meanings"] == "none moderate severe"


# ------------------------------------------------------------------ random effects


def test_random_effects_are_shared_by_arms_and_independent_of_batches() -> None:
    p = _patients(6)
    whole = run_batch(MODEL, p, {"family": "self_expanding"}, {})
    part = run_batch(MODEL, {k: v[3:] for k, v in p.items()}, {"family": "self_expanding"}, {})
    for key in ("mean_gradient_mmhg", "eoa_cm2", "implant_depth_mm", "cycles", "ppm_class"):
        np.testing.assert_array_equal(whole[key][3:], part[key])
    a = random_effects(p["patient_seed"])
    b = random_effects(p["patient_seed"].copy())
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert abs(np.corrcoef(a["orifice"], a["echo.jet"])[0, 1]) < 0.9


# ------------------------------------------------------------------------ follow-up


def test_follow_up_drift_and_excluded_time_points() -> None:
    p = _patients(5)
    out = run_batch(MODEL, p, {"family": "balloon_expandable"}, {})
    assert MODEL.at_timepoint(out, p, 30.0, {})["mean_gradient_mmhg"] is out["mean_gradient_mmhg"]
    year = MODEL.at_timepoint(out, p, 455.25, {})
    np.testing.assert_allclose(year["mean_gradient_mmhg"], out["mean_gradient_mmhg"] * 1.025)
    np.testing.assert_allclose(year["eoa_cm2"], out["eoa_cm2"] / np.sqrt(1.025))
    assert (year["ppm_class"] >= out["ppm_class"]).all()
    reason = MODEL.at_timepoint(out, p, 1825.0, {})
    assert isinstance(reason, str) and "structural valve deterioration" in reason


# -------------------------------------------------------------------------- contract


def test_registry_and_run_batch_contract() -> None:
    model = get_model("tavr")
    assert isinstance(model, TAVRModel)
    p = _patients(6)
    p["lvef_pct"][0] = 95.0  # outside declared bounds
    p["dbp_mmhg"][1] = p["sbp_mmhg"][1] - 5.0  # pulse pressure < 10 mmHg
    engine_settings = {"waveform_points": 40, "arm": "be", "runs_dir": "/tmp/runs"}
    out = run_batch(model, p, {"family": "balloon_expandable"}, engine_settings)
    assert out["status"].tolist()[:2] == [STATUS["invalid_input"]] * 2
    assert (out["status"][2:] == STATUS["ok"]).all()
    assert set(model.outputs) <= set(out)
    assert out["lv_pressure_mmhg"].shape == (6, 40)
    assert np.isnan(out["mean_gradient_mmhg"][:2]).all() and out["cycles"][0] == -1
    ok = slice(2, None)
    assert (out["cycles"][ok] >= 2).all()
    assert (out["mean_gradient_true_mmhg"][ok] > out["net_mean_gradient_mmhg"][ok]).all()
    assert (out["lv_peak_pressure_mmhg"][ok] > out["aortic_systolic_mmhg"][ok]).all()
    np.testing.assert_allclose(
        out["lv_pressure_mmhg"][ok].max(axis=1), out["lv_peak_pressure_mmhg"][ok], rtol=0.05
    )
    assert (out["valve_flow_ml_s"][ok][:, -1] == 0.0).all()
    np.testing.assert_allclose(
        out["cardiac_output_l_min"][ok],
        out["stroke_volume_ml"][ok] * p["heart_rate_bpm"][ok] / 1000.0,
    )


def test_personalisation_reproduces_covariates() -> None:
    p = _patients(10)
    fit = personalise(p)
    assert fit["converged"].all() and fit["miss_pct"].max() < 1.0
    sv = echo.true_stroke_volume(p["svi_ml_m2"], p["bsa_m2"], checked_settings({}))
    np.testing.assert_allclose(fit["sv_target"], sv)
    res = fit["results"]
    np.testing.assert_allclose(res[:, RES["stroke_volume"]], sv, rtol=0.01)
    np.testing.assert_allclose(res[:, RES["sbp"]], p["sbp_mmhg"], rtol=0.01)
    np.testing.assert_allclose(res[:, RES["dbp"]], p["dbp_mmhg"], rtol=0.01)
    np.testing.assert_allclose(
        res[:, RES["ejection_time"]], (415.5 - 1.65 * p["heart_rate_bpm"]) * 1e-3, rtol=0.01
    )


def test_design_overrides_and_per_row_calibration_parameters() -> None:
    p = _patients(5)
    base = run_batch(MODEL, p, {"family": "balloon_expandable"}, {})
    k = np.array([0.4, 0.5, 0.6, 0.7, 0.8])
    swept = run_batch(
        MODEL, p, {"family": "balloon_expandable", "orifice_coefficient_balloon_expandable": k}, {}
    )
    np.testing.assert_allclose(swept["eoa_max_cm2"] / base["eoa_max_cm2"], k / 0.45)
    assert np.all(np.diff(swept["mean_gradient_true_mmhg"] / base["mean_gradient_true_mmhg"]) < 0)
    supra = run_batch(MODEL, p, {"family": "balloon_expandable", "leaflet_position": "supra"}, {})
    assert (supra["leaflet_expansion_pct"] >= base["leaflet_expansion_pct"]).all()


def test_non_converged_patients_are_solver_failures() -> None:
    p = _patients(3)
    out = run_batch(MODEL, p, {"family": "self_expanding"}, {"max_cycles": 2, "steady_tol": 1e-12})
    assert (out["status"] == STATUS["solver_failure"]).all()
    assert np.isnan(out["mean_gradient_mmhg"]).all()


def test_model_card_matches_declared_variables_and_calibration_parameters() -> None:
    card = yaml.safe_load((Path(models.tavr.__file__).parent / "card.yaml").read_text())
    assert card["name"] == MODEL.name and card["version"] == MODEL.version
    for section, declared in (("inputs", MODEL.inputs), ("outputs", MODEL.outputs)):
        assert list(card[section]) == list(declared)
        for key, var in declared.items():
            assert card[section][key]["units"] == var.units, key
    assert set(card["calibration_parameters"]) == set(MODEL.calibration_parameters)
    assert set(card["random_effects"]) == set(models.tavr.physiology.RANDOM_EFFECTS)
    for key in ("assumptions", "limitations", "references", "context_of_use"):
        assert card[key]


@settings(max_examples=20, deadline=None)
@given(
    hr=st.floats(45, 110),
    svi=st.floats(25, 55),
    lvef=st.floats(30, 75),
    sbp=st.floats(100, 170),
    pulse=st.floats(30, 80),
    k=st.floats(0.3, 0.8),
    family=st.sampled_from(sorted(FAMILIES)),
)
def test_gradient_ordering_invariants(hr, svi, lvef, sbp, pulse, k, family) -> None:
    """Doppler-equivalent > net gradient (pressure recovery), opening below full, any patient."""
    p = {key: v[:1].copy() for key, v in _patients(1).items()}
    p.update(
        heart_rate_bpm=np.array([hr]),
        svi_ml_m2=np.array([svi]),
        lvef_pct=np.array([lvef]),
        sbp_mmhg=np.array([sbp]),
        dbp_mmhg=np.array([sbp - pulse]),
    )
    out = run_batch(MODEL, p, {"family": family, f"orifice_coefficient_{family}": k}, {})
    if out["status"][0] != STATUS["ok"]:
        assert np.isnan(out["mean_gradient_mmhg"][0])
        return
    assert out["mean_gradient_true_mmhg"][0] > out["net_mean_gradient_mmhg"][0] > 0
    assert out["peak_gradient_mmhg"][0] > out["mean_gradient_mmhg"][0]
    assert out["eoa_true_cm2"][0] < out["eoa_max_cm2"][0]
    assert 2 <= out["cycles"][0] <= 60


def test_design_sweep_config_sweeps_real_design_parameters() -> None:
    from isct.engine import expand_arms
    from isct.trial import load_config

    config = load_config(
        Path(__file__).resolve().parents[1] / "config" / "trials" / "tavr_design_sweep.yaml"
    )
    arms = config.arms
    assert arms == expand_arms(config.to_dict()["arms"], config.to_dict()["design_sweep"])
    assert len(arms) == 12
    keys = set(config["design_sweep"]["grid"])
    assert keys == {"leaflet_position", "implant_depth_mm"} and keys <= set(
        models.tavr.devices.DESIGN_KEYS
    )
    p = _patients(4)
    out = {
        a["name"]: run_batch(MODEL, p, a["device"], {})
        for a in arms
        if a["name"].startswith("self")
    }
    intra = out["self_expanding[leaflet_position=intra,implant_depth_mm=6]"]
    supra = {
        d: out[f"self_expanding[leaflet_position=supra,implant_depth_mm={d}]"] for d in (3, 6, 9)
    }
    # supra-annular leaflets keep more of their orifice than intra-annular ones in the same frame
    assert (supra[6]["eoa_max_cm2"] > intra["eoa_max_cm2"]).all()
    # and the deeper the housing, the more of the annular deficit it sees
    assert (supra[3]["eoa_max_cm2"] > supra[6]["eoa_max_cm2"]).all()
    assert (supra[6]["eoa_max_cm2"] > supra[9]["eoa_max_cm2"]).all()
    assert (supra[9]["mean_gradient_true_mmhg"] > supra[3]["mean_gradient_true_mmhg"]).all()
