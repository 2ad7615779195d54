"""The coronary physiology model: known answers, monotonicity, serial lesions, the virtual
angiogram, decisions, determinism, its card, and the tiny trial's whole DAG."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import REPO

from isct.trial import load_config
from models import STATUS, get_model, load_card, run_batch
from models.coronary import MAX_LESIONS, CoronaryModel
from models.coronary.stenosis import (
    MMHG_PA,
    lesion_coefficients,
    lesion_drop,
    poiseuille_drop,
    quadratic_flow,
    solve_flow,
)
from models.coronary.verification import newton_order, poiseuille_limit, quadratic_check

TINY = REPO / "tests" / "data" / "coronary_tiny.yaml"
#: A model form without reading error or diffuse disease, for physics tests.
PLAIN = {"measurement": "exact", "diffuse_loss_mean": 0.0, "microvascular_resistance_scale": 2.0}


def patients(lesions: list[list[tuple]], **patient) -> dict[str, np.ndarray]:
    """Model inputs for patients given as lists of (vessel, ref_mm, ds_pct, length_mm)."""
    n = len(lesions)
    out = {
        "aortic_pressure_mmhg": np.full(n, patient.get("pa", 93.0)),
        "venous_pressure_mmhg": np.full(n, patient.get("pv", 5.0)),
        "imr_u": np.asarray(patient.get("imr", [16.6] * n), dtype=float),
        "n_lesions": np.array([len(x) for x in lesions], dtype=np.int8),
        "patient_seed": np.arange(1, n + 1, dtype=np.uint64) * 7919,
    }
    for k in range(MAX_LESIONS):
        rows = [x[k] if k < len(x) else (0, 3.0, 30.0, 10.0) for x in lesions]
        for j, field in enumerate(("vessel", "ref_mm", "ds_pct", "length_mm")):
            dtype = np.int8 if field == "vessel" else float
            out[f"lesion{k + 1}_{field}"] = np.array([r[j] for r in rows], dtype=dtype)
    return out


def run(p, device=None, settings=None):
    out = run_batch(CoronaryModel(), p, device or {"strategy": "ffr"}, settings or PLAIN)
    assert (out["status"] == STATUS["ok"]).all()
    return out


# ------------------------------------------------------------------ stenosis law, known answers


def test_stenosis_law_known_answer_and_its_two_terms():
    """A 50 % stenosis, 15 mm long, in a 3 mm artery (mu 3.5 mPa s, rho 1050 kg/m3): the
    viscous term is Poiseuille over the effective length 0.83 L + 1.64 Ds, the convective term
    K_t rho / 2 (A0/As - 1)^2 U0^2."""
    d0, ds, length, q = 3.0, 1.5, 15.0, 2.0
    a, b = lesion_coefficients(np.array([d0]), np.array([ds]), np.array([length]))
    assert a[0] == pytest.approx(3.1502, abs=1e-4)  # mmHg s/mL
    assert b[0] == pytest.approx(1.0781, abs=1e-4)  # mmHg s2/mL2
    effective = 0.83 * length + 1.64 * ds
    assert a[0] * q == pytest.approx(float(poiseuille_drop(q, ds, effective)), rel=1e-12)
    a0 = np.pi / 4 * (d0 * 1e-3) ** 2
    u0 = q * 1e-6 / a0
    convective = 1.52 * 1050 / 2 * (4.0 - 1.0) ** 2 * u0**2 / MMHG_PA
    assert b[0] * q * q == pytest.approx(convective, rel=1e-12)
    assert lesion_drop(np.array([q]), a, b)[0] == pytest.approx(a[0] * q + convective)


def test_poiseuille_limit_of_a_long_mild_lesion():
    limit = poiseuille_limit()
    assert limit["viscous_rel_error"] < 1e-12
    errors = np.array(limit["total_rel_error"])
    assert (np.diff(errors) < 0).all() and errors[-1] < 1e-4  # the convective term vanishes
    ratio = np.array(limit["geometric_ratio"])  # against the geometric length: -> 0.83
    assert (np.diff(ratio) < 0).all() and abs(ratio[-1] - 0.83) < 0.02


def test_newton_solver_against_the_closed_form_root_and_its_order():
    check = quadratic_check(n=500)
    assert check["unconverged"] == 0
    assert check["flow_max_rel_error"] < 1e-13
    assert check["ffr_max_abs_error"] < 1e-13
    order = newton_order()
    assert order["triples"] > 20 and abs(order["observed_order"] - 2.0) < 0.1
    # a purely linear vessel (no lesion): Q = dP / R exactly
    q, ok = solve_flow(np.array([88.0]), np.array([22.0]), np.zeros((1, 3)), np.zeros((1, 3)))
    assert ok.all() and q[0] == pytest.approx(4.0, rel=1e-15)


def test_model_code_verification_evidence():
    cv = CoronaryModel().code_verification()
    assert cv["formal_order"] == 2.0 and cv["order_error_abs"] < 0.1
    assert cv["poiseuille_viscous_rel_error"] < 1e-12 and cv["ffr_max_abs_error"] < 1e-12


# ---------------------------------------------------------------------- physiology


def test_single_lesion_ffr_matches_the_closed_form():
    """FFR = R_mu Q / (Pa - Pv) with Q the root of (R_mu + a) Q + b Q^2 = Pa - Pv."""
    out = run(patients([[(0, 3.0, 55.0, 12.0), (1, 3.0, 30.0, 5.0)]], imr=[16.6]))
    a, b = lesion_coefficients(np.array([3.0]), np.array([3.0 * 0.45]), np.array([12.0]))
    r_mu = 2.0 * 16.6  # scale x IMR at the 3 mm reference diameter
    q = quadratic_flow(88.0, r_mu + a, b)
    assert out["ffr"][0, 0] == pytest.approx(float(r_mu * q[0] / 88.0), rel=1e-12)
    assert out["flow_ml_min"][0, 0] == pytest.approx(60.0 * float(q[0]), rel=1e-12)
    assert np.isnan(out["ffr"][0, 2:]).all() and (out["lesion_vessel"][0, 2:] == -1).all()


def test_ffr_falls_with_stenosis_and_length_and_rises_with_microvascular_resistance():
    ds = [(0, 3.0, x, 12.0) for x in (30.0, 45.0, 60.0, 75.0)]
    out = run(patients([[lesion, (1, 3.0, 20.0, 5.0)] for lesion in ds]))
    assert (np.diff(out["ffr"][:, 0]) < 0).all()
    lengths = [(0, 3.0, 55.0, x) for x in (5.0, 10.0, 20.0, 40.0)]
    out = run(patients([[lesion, (1, 3.0, 20.0, 5.0)] for lesion in lengths]))
    assert (np.diff(out["ffr"][:, 0]) < 0).all()
    imr = [8.0, 16.6, 30.0, 60.0]
    out = run(patients([[(0, 3.0, 60.0, 15.0), (1, 3.0, 20.0, 5.0)]] * 4, imr=imr))
    assert (np.diff(out["ffr"][:, 0]) > 0).all()
    assert (np.diff(out["flow_ml_min"][:, 0]) < 0).all()


def test_serial_lesions_share_one_flow_and_add_their_pressure_drops():
    proximal, distal, other = (0, 3.0, 50.0, 10.0), (0, 3.0, 60.0, 10.0), (2, 3.0, 70.0, 10.0)
    out = run(patients([[proximal, distal], [proximal, other], [distal, other]]))
    ffr, flow = out["ffr"], out["flow_ml_min"]
    # one artery, two lesions: the same flow, the distal FFR below the proximal one
    assert flow[0, 0] == flow[0, 1] and ffr[0, 1] < ffr[0, 0]
    # the closed form with the summed coefficients gives the distal FFR
    a, b = lesion_coefficients(np.full(2, 3.0), np.array([1.5, 1.2]), np.full(2, 10.0))
    q = quadratic_flow(88.0, 33.2 + a.sum(), b.sum())
    assert ffr[0, 1] == pytest.approx(float(33.2 * q / 88.0), rel=1e-12)
    # the artery with both lesions ends lower than with either alone ...
    assert ffr[0, 1] < ffr[1, 0] and ffr[0, 1] < ffr[2, 0]
    # ... while the distal lesion's lower flow masks the proximal one: its own pressure drop
    # is smaller than alone (the serial-stenosis interaction of De Bruyne and Pijls)
    assert ffr[0, 0] > ffr[1, 0]
    # a lesion in another artery does not change this artery
    assert ffr[1, 1] == pytest.approx(ffr[2, 1], rel=1e-12)
    assert out["vessel_first"][0].tolist()[:2] == [1, 0]


def test_stenting_restores_flow_and_decisions_follow_the_arm():
    p = patients([[(0, 3.0, 65.0, 15.0), (1, 3.0, 35.0, 10.0), (2, 3.2, 80.0, 12.0)]] * 2)
    none = run(p, {"strategy": "none"})
    assert (none["treated"][:, :3] == 0).all()
    assert np.allclose(none["ffr_post"], none["ffr"], equal_nan=True)
    every = run(p, {"strategy": "all"})
    assert (every["ffr_post"][:, :3] > every["ffr"][:, :3]).all()
    assert (every["lesions_treated"] == 3).all()
    angio = run(p, {"strategy": "angiography", "ds_threshold_pct": 50})
    assert angio["treated"][0, :3].tolist() == [1, 0, 1]  # exact reads: 65, 35, 80 %
    ffr = run(p, {"strategy": "ffr"})
    expected = (ffr["ds_visual_pct"][0, :3] >= 50) & (ffr["ffr"][0, :3] <= 0.80)
    assert ffr["treated"][0, :3].tolist() == expected.astype(int).tolist()
    discordant = (ffr["ds_visual_pct"][0, :3] >= 50) != (ffr["ffr"][0, :3] <= 0.80)
    assert ffr["n_discordant"][0] == discordant.sum()


# ------------------------------------------------------------------ observation model


def test_virtual_angiogram_reads_with_the_published_error_and_the_same_in_every_arm():
    n = 4000
    p = patients([[(0, 3.0, 55.0, 12.0), (1, 3.0, 55.0, 12.0)]] * n)
    p["patient_seed"] = np.arange(n, dtype=np.uint64) * 104729 + 17
    settings = {"microvascular_resistance_scale": 2.0}
    a = run(p, {"strategy": "ffr"}, settings)
    b = run(p, {"strategy": "angiography"}, settings)
    for key in ("ds_visual_pct", "ds_qca_pct", "ffr"):
        assert np.array_equal(a[key], b[key], equal_nan=True)  # common random numbers
    visual, qca = a["ds_visual_pct"][:, :2].ravel(), a["ds_qca_pct"][:, :2].ravel()
    assert np.array_equal(visual, np.rint(visual))  # whole percent
    diff = visual - qca
    assert diff.mean() == pytest.approx(8.2, abs=0.4)  # A2 project: 8.2 +/- 8.4 points
    assert diff.std() == pytest.approx(8.4, abs=0.4)
    # QCA: 0.12 mm on both diameters of a 3 mm artery with a 1.35 mm lumen
    sd = 100 * np.sqrt((0.12 / 3.0) ** 2 + (1.35 * 0.12 / 9.0) ** 2)
    # the visual error is independent of the QCA's: against the true lumen its SD is the
    # published SD of the difference less the QCA's share, and it is uncorrelated with it
    true = a["ds_true_pct"][:, :2].ravel()
    assert (visual - true).std() == pytest.approx(np.sqrt(8.4**2 - sd**2), abs=0.4)
    assert abs(np.corrcoef(visual - true, qca - true)[0, 1]) < 0.05
    assert qca.mean() == pytest.approx(55.0, abs=0.3)
    assert qca.std() == pytest.approx(sd, rel=0.08)
    exact = run(p, {"strategy": "ffr"}, PLAIN)
    assert np.array_equal(exact["ds_visual_pct"], exact["ds_true_pct"], equal_nan=True)


def test_results_do_not_depend_on_the_batch():
    import cohorts

    spec = cohorts.load_spec(REPO / "cohorts/populations/coronary_intermediate.yaml")
    ds = cohorts.sample(spec, 300, seed=3)
    model = CoronaryModel()
    p = {k: ds[k].values for k in model.inputs}
    full = run_batch(model, p, {"strategy": "ffr"}, {"microvascular_resistance_scale": 2.5})
    for start, stop in ((1, 40), (77, 78), (120, 300)):
        part = run_batch(
            model,
            {k: v[start:stop] for k, v in p.items()},
            {"strategy": "ffr"},
            {"microvascular_resistance_scale": 2.5},
        )
        for key, value in part.items():
            assert np.array_equal(full[key][start:stop], value, equal_nan=True), key


# ------------------------------------------------------------------------ contract, card


def test_registry_card_settings_and_time_window():
    model = get_model("coronary")
    assert isinstance(model, CoronaryModel)
    card = load_card(REPO / "models/coronary/card.yaml", model)
    assert set(card["calibration_parameters"]) == set(model.calibration_parameters)
    assert model.output_dims({}) == {"lesion": MAX_LESIONS}
    assert model.outputs["ffr"].dims == ("lesion",) and model.outputs["ffr"].ragged
    with pytest.raises(ValueError, match="strategy.*allowed"):
        model.check({"strategy": "guess"}, {})
    with pytest.raises(ValueError, match="unknown.*allowed keys"):
        model.check({}, {"viscosity": 4.0})
    outs = {"ffr": np.zeros((1, MAX_LESIONS))}
    assert model.at_timepoint(outs, {}, 0.0, {}) == outs
    assert "restenosis" in model.at_timepoint(outs, {}, 365.0, {})
    assert model.events["ffr_le_080"].occurs(np.array([0.75, 0.85])).tolist() == [1.0, 0.0]


# --------------------------------------------------------------------------- tiny trial


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("coronary")
    proc = subprocess.run(
        [sys.executable, "-m", "isct.cli", "run", str(TINY), "--cores", "2"]
        + ["--directory", str(workdir)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return workdir


def test_tiny_coronary_trial_runs_end_to_end(tiny_run):
    config = load_config(TINY)
    results = tiny_run / "results" / config["trial"]["name"]
    outcomes = xr.open_zarr(results / "outcomes.zarr", consolidated=False)
    assert outcomes["ffr"].dims == ("arm", "patient", "lesion")
    assert outcomes.sizes["lesion"] == MAX_LESIONS
    assert (outcomes["status"].values == STATUS["ok"]).mean() > 0.95
    # calibrated on calibration rows only; the posterior is used downstream
    calibration = json.loads((results / "calibration" / "calibration.json").read_text())
    assert set(calibration["settings"]) == {"microvascular_resistance_scale", "lumen_eccentricity"}
    rows = calibration["comparators"]["rows"]
    assert rows and all(r.startswith(("fournier", "lee", "cho", "fame_mix")) for r in rows)
    # lesion-level validation rows compare lesions as read, never a calibration row
    table = pd.read_csv(results / "evidence" / "validation.csv").set_index("id")
    assert (table["role"] == "validation").all()
    band = table.loc["fame_ffr_visual_50_70"]
    assert band["n_virtual"] > 0 and 0.0 <= band["predicted"] <= 1.0
    ffr = outcomes["ffr"].sel(arm="ffr_guided").values
    read = outcomes["ds_visual_pct"].sel(arm="ffr_guided").values
    mvd = outcomes["n_vessels_indicated"].sel(arm="ffr_guided").values >= 2
    ok = outcomes["status"].sel(arm="ffr_guided").values == 0
    sel = (read >= 50) & (read <= 70) & (mvd & ok)[:, None] & np.isfinite(ffr)
    assert band["n_virtual"] == sel.sum()
    assert band["predicted"] == pytest.approx((ffr[sel] <= 0.80).mean())
    # every V&V 40 factor assessed; the report renders the patient-level endpoints by arm
    assessment = pd.read_csv(results / "evidence" / "assessment.csv").set_index("factor")
    assert len(assessment) == 13
    assert assessment.loc["use_error", "status"] == "pass"
    assert assessment.loc["numerical_code_verification", "status"] == "pass"
    html = (tiny_run / "reports" / config["trial"]["name"] / "credibility_report.html").read_text()
    for text in ("lesions_treated", "ffr_post_min", "fame_ffr_visual_71_90", "coronary 1.1.0"):
        assert text in html
