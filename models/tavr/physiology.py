"""TAVR physiology: settings, patient personalisation, the valve table and the device run.

The pieces :class:`models.tavr.model.TAVRModel` strings together and the model's own
verification (:mod:`models.tavr.verification`) re-uses with other time steps: checked
settings (:func:`checked_settings`), the lumped parameters of each patient
(:func:`personalise`), the flow-dependent valve table (:func:`valve_table`), the kernel run to
periodic steady state (:func:`run_device`) and the per-patient random effects
(:func:`random_effects`). Sources of the numbers: the :mod:`models.tavr.model` docstring.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import ModelError
from ..streams import patient_normals
from . import echo, kernel
from .devices import DESIGN_KEYS

MMHG_PA = kernel.MMHG_PA  # Pa per mmHg
J_PER_MMHG_ML = MMHG_PA * 1e-6  # J per mmHg·mL

#: Default settings; every key may be overridden, unknown keys are rejected.
DEFAULT_SETTINGS: dict[str, Any] = {
    "dt_s": 1e-3,  # RK4 step (s); T/dt rounded to an integer number of steps per cycle
    "max_cycles": 60,  # cap on cycles of the device run
    "steady_tol": 1e-4,  # relative cycle-to-cycle change that counts as periodic steady state
    "waveform_points": 0,  # samples per cycle of the waveform outputs (0: none)
    "ejection_time_target": "weissler",  # {"weissler", "none"}: fit T_max to LVET(HR)
    "reference_eoa_cm2": 3.0,  # unobstructed valve for personalisation (Baumgartner 2009)
    "max_personalisation_cycles": 80,
    "personalisation_dt_s": 4e-3,  # RK4 step of the personalisation (at least dt_s) (s)
    "personalisation_tol": 5e-3,  # relative miss of EDV, ESV, SBP, DBP accepted
    "max_personalisation_miss_pct": 5.0,  # larger misses make the patient a solver_failure
    "aorta_diameter_mm": 32.5,  # ascending aorta, typical 30–35 mm (reference file)
    "blood_density_kg_m3": 1050.0,  # Garcia et al. 2005
    "left_atrial_pressure_mmhg": 10.0,  # model assumption (card.yaml)
    "mitral_resistance_mmhg_s_ml": 0.005,  # model assumption (card.yaml)
    "unstressed_volume_ml": 10.0,  # V_0, reference 10–12 mL
    "zc_ratio": 0.1,  # Z_c / R: upper end of reference Z_c 0.015–0.1 at R ≈ 1 (card.yaml)
    "out_of_chart": "nearest",  # {"nearest", "invalid"} (devices.select_size)
    # deployment (models.tavr.deployment)
    "annulus_resistance_share": 0.74,  # χ: Kazuno 2016 (SAPIEN 3), Rodríguez-Olivares 2016
    "calcium_exponent": 0.1,  # γ: assumption, uncertain input of the UQ
    "calcium_reference_au": 2500.0,  # AVC at which χ applies as stated (cohort median order)
    # calibration parameters: fitted by the calibrate stage (card.yaml); these are the
    # starting values, not results
    "orifice_coefficient_balloon_expandable": 0.45,
    "orifice_coefficient_self_expanding": 0.40,
    "eoa_random_effect_sd": 0.10,
    "opening_velocity_cm_s": 100.0,
    "opening_minimum": 0.3,  # o_min: leaflet opening fraction at zero flow (assumption)
    # virtual echo (models.tavr.echo)
    "measurement": "virtual_echo",  # {"virtual_echo", "exact"}: measured = true with "exact"
    "lvot_area_ratio": 0.83,  # Gaspar 2012
    "lvot_diameter_cv": 0.043,  # Shiran 2008/2009
    "jet_vti_cv": 0.108,  # Cecaro 2013 variance components
    "lvot_vti_cv": 0.120,  # Cecaro 2013 variance components
    "vti_error_correlation": 0.39,  # Sutaria (BCS/BSE)
    "doppler_coefficient": 4.0,  # simplified Bernoulli, mmHg per (m/s)²
    # follow-up (TAVRModel.at_timepoint)
    "gradient_drift_per_year": 0.025,  # relative mean-gradient increase per year (card.yaml)
    "max_follow_up_days": 730.0,
}
_CHOICES = {
    "out_of_chart": ("nearest", "invalid"),
    "ejection_time_target": ("weissler", "none"),
    "measurement": ("virtual_echo", "exact"),
}
#: Settings that may be arrays of shape (n,) (uncertain or calibrated inputs, per row).
PER_ROW_SETTINGS = (
    "reference_eoa_cm2",
    "aorta_diameter_mm",
    "blood_density_kg_m3",
    "left_atrial_pressure_mmhg",
    "mitral_resistance_mmhg_s_ml",
    "unstressed_volume_ml",
    "annulus_resistance_share",
    "calcium_exponent",
    "orifice_coefficient_balloon_expandable",
    "orifice_coefficient_self_expanding",
    "eoa_random_effect_sd",
    "opening_velocity_cm_s",
)
#: The model's calibration parameters (fitted to calibration comparators by the trial's
#: calibrate stage; see card.yaml for their meaning and prior ranges).
CALIBRATION_PARAMETERS = (
    "orifice_coefficient_balloon_expandable",
    "orifice_coefficient_self_expanding",
    "eoa_random_effect_sd",
    "opening_velocity_cm_s",
)
#: Keys the engine adds to every model's settings (ignored here).
ENGINE_KEYS = ("arm", "runs_dir")
DEVICE_KEYS = ("family", "size_mm", "label", *DESIGN_KEYS, *PER_ROW_SETTINGS)
#: Per-patient random effects (standard normals drawn from the cohort's patient_seed).
RANDOM_EFFECTS: dict[str, str] = {
    "tavr.orifice": "between-patient variability of the fully open orifice (SD calibrated)",
    "tavr.implant_depth": "procedural implant depth (family mean and SD)",
    "echo.lvot_diameter": "LVOT diameter reading error",
    "echo.jet": "CW jet velocity envelope reading error",
    "echo.lvot_vti": "PW LVOT velocity reading error (correlated with the jet)",
}


class TAVRSettingsError(ModelError):
    """A TAVR settings mapping has an unknown key or a value outside its allowed set."""


def checked_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(settings) - set(DEFAULT_SETTINGS) - set(ENGINE_KEYS))
    if unknown:
        raise TAVRSettingsError(
            f"TAVR settings keys {unknown} are unknown; allowed keys: {sorted(DEFAULT_SETTINGS)}"
        )
    out = {**DEFAULT_SETTINGS, **{k: v for k, v in settings.items() if k not in ENGINE_KEYS}}
    for key, allowed in _CHOICES.items():
        if out[key] not in allowed:
            raise TAVRSettingsError(
                f"TAVR setting {key!r} is {out[key]!r}; allowed values: {list(allowed)}"
            )
    if not float(out["dt_s"]) > 0:
        raise TAVRSettingsError(f"TAVR setting 'dt_s' is {out['dt_s']!r}; allowed: a value > 0")
    if int(out["waveform_points"]) < 0:
        raise TAVRSettingsError(
            f"TAVR setting 'waveform_points' is {out['waveform_points']!r}; allowed: >= 0"
        )
    if not 0.0 < float(out["opening_minimum"]) <= 1.0:
        raise TAVRSettingsError(
            f"TAVR setting 'opening_minimum' is {out['opening_minimum']!r}; allowed: 0 < x <= 1"
        )
    return out


def row_values(value: Any, n: int, key: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        return np.full(n, float(arr))
    if arr.shape != (n,):
        raise TAVRSettingsError(
            f"TAVR key {key!r} has shape {arr.shape}; allowed: a scalar or shape ({n},)"
        )
    return arr.copy()


def valve_table(
    eoa_max_cm2: np.ndarray,
    settings: Mapping[str, Any],
    *,
    rigid: bool = False,
) -> np.ndarray:
    """Per-patient valve description for the kernel (columns :data:`kernel.VALVE`).

    Parameters
    ----------
    eoa_max_cm2 : ndarray, shape (n,)
        Fully open effective orifice area (cm²).
    settings : mapping
        Checked settings (``aorta_diameter_mm``, ``blood_density_kg_m3``,
        ``opening_velocity_cm_s``, ``opening_minimum``; scalars or rows).
    rigid : bool
        A rigid orifice (no opening law): the personalisation's reference valve.
    """
    eoa = np.asarray(eoa_max_cm2, dtype=np.float64)
    n = eoa.shape[0]
    table = np.empty((n, len(kernel.VALVE)))
    table[:, 0] = eoa
    table[:, 1] = 1.0 if rigid else float(settings["opening_minimum"])
    table[:, 2] = row_values(settings["opening_velocity_cm_s"], n, "opening_velocity_cm_s") * eoa
    table[:, 3] = (
        0.25
        * np.pi
        * (row_values(settings["aorta_diameter_mm"], n, "aorta_diameter_mm") * 0.1) ** 2
    )
    table[:, 4] = row_values(settings["blood_density_kg_m3"], n, "blood_density_kg_m3")
    return table


def _targets(
    patients: Mapping[str, np.ndarray], v0: np.ndarray, s: Mapping[str, Any]
) -> dict[str, np.ndarray]:
    sv = echo.true_stroke_volume(patients["svi_ml_m2"], patients["bsa_m2"], s)
    edv = sv / (np.asarray(patients["lvef_pct"], dtype=np.float64) / 100.0)
    return {
        "sv": sv,
        "edv": edv,
        "esv": edv - sv,
        "sbp": np.asarray(patients["sbp_mmhg"], dtype=np.float64),
        "dbp": np.asarray(patients["dbp_mmhg"], dtype=np.float64),
        "period": 60.0 / np.asarray(patients["heart_rate_bpm"], dtype=np.float64),
        "v0": np.minimum(v0, 0.5 * (edv - sv)),
    }


def _run_kernel(
    params: Mapping[str, np.ndarray],
    valve: np.ndarray,
    state: np.ndarray,
    dt_s: float,
    s: Mapping[str, Any],
    *,
    targets: np.ndarray | None = None,
    max_cycles: int,
    n_wave: int = 0,
    steps: np.ndarray | None = None,
    project: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """One compiled pass over the batch; ``targets`` switches personalisation on."""
    n = state.shape[0]
    if steps is None:
        steps = np.maximum(np.rint(params["period_s"] / dt_s), 8).astype(np.int64)
    results = np.zeros((n, len(kernel.RES)))
    waves = np.zeros((n, 3, n_wave))
    kernel.simulate_batch(
        params["period_s"],
        steps,
        params["t_max"],
        params["e_max"],
        params["e_min"],
        params["v_0"],
        params["p_la"],
        params["r_mv"],
        params["z_c"],
        params["r_p"],
        params["c_p"],
        valve,
        state,
        targets is not None,
        np.zeros((n, 5)) if targets is None else targets,
        float(s["zc_ratio"]),
        int(max_cycles),
        float(s["steady_tol"]),
        float(s["personalisation_tol"]),
        project,
        waves,
        results,
    )
    return results, waves


def personalise(
    patients: Mapping[str, np.ndarray], settings: Mapping[str, Any] | None = None
) -> dict[str, np.ndarray]:
    """Fit E_max, E_min, R, C (and Z_c) so each patient's baseline matches its covariates.

    The patient is fitted with an unobstructed rigid reference valve of ``reference_eoa_cm2``
    (the covariates describe the ventricle and the arterial load; the device then changes
    afterload, stroke volume and gradients). Targets: cycle length 60/HR; true stroke volume
    SV = SVI·BSA / LVOT area ratio (:func:`models.tavr.echo.true_stroke_volume`);
    EDV = SV/LVEF, ESV = EDV − SV; systolic and diastolic aortic pressure; and (with
    ``ejection_time_target = "weissler"``) LVET = 415.5 − 1.65·HR ms. Closed-form first
    guesses (E_min = P_la/(EDV − V_0), E_max = 0.9·SBP/(ESV − V_0), R = MAP/CO,
    C = 0.8·SV/PP) are refined by a damped fixed-point iteration inside the compiled kernel,
    one update per simulated cycle, with the step max(``dt_s``, ``personalisation_dt_s``).

    Parameters
    ----------
    patients : mapping of str to ndarray
        ``heart_rate_bpm``, ``bsa_m2``, ``lvef_pct``, ``svi_ml_m2``, ``sbp_mmhg``, ``dbp_mmhg``.
    settings : mapping, optional
        Overrides of :data:`DEFAULT_SETTINGS`.

    Returns
    -------
    dict of str to ndarray
        Parameters (``period_s``, ``t_max``, ``e_max``, ``e_min``, ``v_0``, ``p_la``,
        ``r_mv``, ``z_c``, ``r_p``, ``c_p``), the end state ``state`` (n, 3), ``sv_target``,
        ``residual_pct`` = 100·(SV_model − SV_target)/SV_target, ``miss_pct`` (largest
        relative miss of EDV, ESV, SBP and DBP, %), ``ejection_time_miss_pct``,
        ``converged`` (bool), ``cycles`` and the kernel ``results`` of the last fitted cycle.
    """
    s = checked_settings(settings or {})
    n = np.asarray(patients["heart_rate_bpm"]).shape[0]
    row = {k: row_values(s[k], n, k) for k in PER_ROW_SETTINGS}
    tg = _targets(patients, row["unstressed_volume_ml"], s)
    v0, pla = tg["v0"], row["left_atrial_pressure_mmhg"]
    pulse = tg["sbp"] - tg["dbp"]
    mean_p = tg["dbp"] + pulse / 3.0
    r_total = mean_p / (tg["sv"] / tg["period"])
    params = {
        "period_s": tg["period"],
        "t_max": 0.2 + 0.15 * tg["period"],  # Stergiopulos 1996, first guess
        "e_max": 0.9 * tg["sbp"] / (tg["esv"] - v0),
        "e_min": pla / (tg["edv"] - v0),
        "v_0": v0,
        "p_la": pla,
        "r_mv": row["mitral_resistance_mmhg_s_ml"],
        "z_c": s["zc_ratio"] * r_total / (1.0 + s["zc_ratio"]),
        "r_p": r_total / (1.0 + s["zc_ratio"]),
        "c_p": np.clip(0.8 * tg["sv"] / pulse, 0.2, 5.0),
    }
    valve = valve_table(row["reference_eoa_cm2"], {**s, **row}, rigid=True)
    state = np.column_stack([tg["edv"], np.zeros(n), tg["dbp"]])
    if s["ejection_time_target"] == "weissler":
        # LVET = 415.5 − 1.65·HR ms: the mean of Weissler's regressions for men
        # (413 − 1.7·HR) and women (418 − 1.6·HR), Weissler et al., Circulation 1968.
        et_target = (415.5 - 1.65 * np.asarray(patients["heart_rate_bpm"])) * 1e-3
    else:
        et_target = np.zeros(n)
    targets = np.column_stack([tg["edv"], tg["esv"], tg["sbp"], tg["dbp"], et_target])
    results, _ = _run_kernel(
        params,
        valve,
        state,
        max(float(s["dt_s"]), float(s["personalisation_dt_s"])),
        s,
        targets=targets,
        max_cycles=int(s["max_personalisation_cycles"]),
    )
    res = kernel.RES
    # The patient's own covariates; the ejection-time target is a population regression
    # (Weissler), approached as closely as the ventricle allows but not a reason to fail.
    miss = np.column_stack(
        [
            (results[:, res["edv"]] - tg["edv"]) / tg["edv"],
            (results[:, res["esv"]] - tg["esv"]) / tg["edv"],
            (results[:, res["sbp"]] - tg["sbp"]) / tg["sbp"],
            (results[:, res["dbp"]] - tg["dbp"]) / tg["dbp"],
        ]
    )
    et_miss = np.where(
        et_target > 0,
        (results[:, res["ejection_time"]] - et_target) / np.where(et_target > 0, et_target, 1),
        0.0,
    )
    sv_model = results[:, res["stroke_volume"]]
    params.update(
        state=state,
        sv_target=tg["sv"],
        residual_pct=100.0 * (sv_model - tg["sv"]) / tg["sv"],
        miss_pct=100.0 * np.abs(miss).max(axis=1),
        ejection_time_miss_pct=100.0 * np.abs(et_miss),
        converged=results[:, res["converged"]] > 0.5,
        cycles=results[:, res["cycles"]].astype(np.int64),
        results=results,
    )
    return params


def true_endpoints(results: np.ndarray, valve: np.ndarray) -> dict[str, np.ndarray]:
    """True haemodynamic endpoints from the kernel's per-cycle results (vectorised).

    The true Doppler-equivalent gradient is ρ/2·mean(v²) over ejection with v = Q/A(Q) (no
    pressure recovery); the net gradient is the mean Garcia pressure drop over ejection,
    ∫K·Q²dt / ET (the inertial term integrates to zero between valve opening and closure);
    the true effective orifice area is SV / jet VTI (what a perfect continuity equation
    measures).
    """
    res = kernel.RES
    sv = results[:, res["stroke_volume"]]
    et = results[:, res["ejection_time"]]
    rho = valve[:, kernel.VALVE["rho"]]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_v2 = results[:, res["int_v2"]] / et * 1e-4  # (cm/s)² → (m/s)²
        return {
            "stroke_volume_ml": sv,
            "ejection_time_s": et,
            "vti_cm": results[:, res["vti"]],
            "mean_v2": mean_v2,
            "peak_velocity_m_s": results[:, res["v_peak"]] * 1e-2,
            "mean_gradient_true_mmhg": 0.5 * rho * mean_v2 / MMHG_PA,
            "net_mean_gradient_mmhg": results[:, res["int_net"]] / et,
            "eoa_true_cm2": sv / results[:, res["vti"]],
        }


def run_device(
    fit: Mapping[str, np.ndarray],
    valve: np.ndarray,
    settings: Mapping[str, Any] | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Run personalised patients with a valve to periodic steady state.

    Parameters
    ----------
    fit : mapping
        Output of :func:`personalise` (its ``state`` is copied, not modified).
    valve : ndarray, shape (n, len(kernel.VALVE))
        Per-patient valve (:func:`valve_table`).
    settings : mapping, optional
        Overrides of :data:`DEFAULT_SETTINGS` (``dt_s``, ``max_cycles``, ``steady_tol``,
        ``waveform_points`` …).

    Returns
    -------
    endpoints : dict of str to ndarray
        :func:`true_endpoints`, the pressures, stroke work, cycles and the waveform arrays
        (n, waveform_points).
    converged : ndarray of bool
    """
    s = checked_settings(settings or {})
    n_wave = int(s["waveform_points"])
    results, waves = _run_kernel(
        fit,
        valve,
        np.array(fit["state"], dtype=np.float64, copy=True),
        float(s["dt_s"]),
        s,
        max_cycles=int(s["max_cycles"]),
        n_wave=n_wave,
    )
    res = kernel.RES
    out = true_endpoints(results, valve)
    out.update(
        lv_peak_pressure_mmhg=results[:, res["lv_peak"]],
        aortic_systolic_mmhg=results[:, res["sbp"]],
        aortic_diastolic_mmhg=results[:, res["dbp"]],
        lv_stroke_work_j=results[:, res["stroke_work"]] * J_PER_MMHG_ML,
        cycles=results[:, res["cycles"]].astype(np.int32),
        waveform_time_s=fit["period_s"][:, None] * np.arange(n_wave)[None, :] / max(n_wave, 1),
        lv_pressure_mmhg=waves[:, 0],
        aortic_pressure_mmhg=waves[:, 1],
        valve_flow_ml_s=waves[:, 2],
    )
    return out, results[:, res["converged"]] > 0.5


def random_effects(patient_seed: np.ndarray) -> dict[str, np.ndarray]:
    """The model's per-patient standard normal random effects (:data:`RANDOM_EFFECTS`)."""
    drawn = patient_normals(patient_seed, list(RANDOM_EFFECTS))
    return {
        "orifice": drawn["tavr.orifice"],
        "implant_depth": drawn["tavr.implant_depth"],
        **{k: drawn[k] for k in echo.STREAMS},
    }
