"""TAVR haemodynamics: device–anatomy deployment, LV – valve – Windkessel kernel, virtual echo.

:class:`TAVRModel` turns each virtual patient's covariates into lumped parameters
(:func:`personalise`), sizes the device from the annulus by the manufacturer's chart, deploys
it in the patient's annulus (:mod:`models.tavr.deployment`: achieved frame expansion, leaflet
level, fully open orifice with a calibrated per-patient random effect), runs the compiled
kernel (:mod:`models.tavr.kernel`, leaflets opening with the flow) to periodic steady state,
and measures the result with a virtual echo (:mod:`models.tavr.echo`). The true values are
kept beside the measured ones (``*_true``).

Numbers used here, with their sources (``shared/reference/tavr.md`` unless stated):

* double-Hill elastance and T_max = 0.2 + 0.15·t_c — Stergiopulos et al. 1996;
* E_max 2–2.6 mmHg/mL, E_min 0.03–0.06 mmHg/mL, V_0 10–12 mL (V_0 = 10 mL used);
* Windkessel Z_c 0.015–0.1, R 0.8–1.2 mmHg·s/mL, C 1.4–1.8 mL/mmHg (Z_c = 0.1·R, the upper
  end, for the stiff aorta of elderly patients; see ``card.yaml``);
* LVET = 415.5 − 1.65·HR ms (mean of Weissler's sex-specific regressions, Weissler et al.,
  Circulation 1968), the ejection-time target that fixes T_max per patient;
* Garcia energy-loss coefficient ELCo = EOA·A_a/(A_a − EOA), blood ρ = 1050 kg/m³,
  1 mmHg = 133.322 Pa, ascending aorta 30–35 mm (32.5 mm default) — Garcia et al. 2005;
* VARC-3 PPM thresholds (:mod:`models.tavr.echo`).

Assumptions that are this model's own are listed in ``card.yaml``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from ..base import STATUS, Event, Model, Variable
from ..streams import patient_normals
from . import echo, kernel
from .deployment import deploy
from .devices import DESIGN_KEYS, FAMILIES, TAVRDeviceError, family_with, select_size

__all__ = [
    "CALIBRATION_PARAMETERS",
    "DEFAULT_SETTINGS",
    "TAVRModel",
    "TAVRSettingsError",
    "personalise",
    "run_device",
]

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
_PER_ROW_SETTINGS = (
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
_ENGINE_KEYS = ("arm", "runs_dir")
_DEVICE_KEYS = ("family", "size_mm", "label", *DESIGN_KEYS, *_PER_ROW_SETTINGS)
#: Per-patient random effects (standard normals drawn from the cohort's patient_seed).
RANDOM_EFFECTS: dict[str, str] = {
    "tavr.orifice": "between-patient variability of the fully open orifice (SD calibrated)",
    "tavr.implant_depth": "procedural implant depth (family mean and SD)",
    "echo.lvot_diameter": "LVOT diameter reading error",
    "echo.jet": "CW jet velocity envelope reading error",
    "echo.lvot_vti": "PW LVOT velocity reading error (correlated with the jet)",
}


class TAVRSettingsError(ValueError):
    """A TAVR settings mapping has an unknown key or a value outside its allowed set."""


def _settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(settings) - set(DEFAULT_SETTINGS) - set(_ENGINE_KEYS))
    if unknown:
        raise TAVRSettingsError(
            f"TAVR settings keys {unknown} are unknown; allowed keys: {sorted(DEFAULT_SETTINGS)}"
        )
    out = {**DEFAULT_SETTINGS, **{k: v for k, v in settings.items() if k not in _ENGINE_KEYS}}
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


def _row(value: Any, n: int, key: str) -> np.ndarray:
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
    table[:, 2] = _row(settings["opening_velocity_cm_s"], n, "opening_velocity_cm_s") * eoa
    table[:, 3] = (
        0.25 * np.pi * (_row(settings["aorta_diameter_mm"], n, "aorta_diameter_mm") * 0.1) ** 2
    )
    table[:, 4] = _row(settings["blood_density_kg_m3"], n, "blood_density_kg_m3")
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
    s = _settings(settings or {})
    n = np.asarray(patients["heart_rate_bpm"]).shape[0]
    row = {k: _row(s[k], n, k) for k in _PER_ROW_SETTINGS}
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
    s = _settings(settings or {})
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


def _checked_family(device: Mapping[str, Any]):
    """The device's valve family (with design overrides), after rejecting unknown keys."""
    unknown = sorted(set(device) - set(_DEVICE_KEYS))
    if unknown:
        raise TAVRDeviceError(
            f"TAVR device keys {unknown} are unknown; allowed keys: {list(_DEVICE_KEYS)}"
        )
    if "family" not in device:
        raise TAVRDeviceError(f"TAVR device needs key 'family'; allowed values: {sorted(FAMILIES)}")
    return family_with(dict(device))


def _sizes(family, device, patients, n, out_of_chart) -> tuple[np.ndarray, np.ndarray]:
    if device.get("size_mm") is not None:
        size = np.broadcast_to(np.asarray(device["size_mm"], dtype=np.int64), (n,)).copy()
        return size, np.zeros(n, dtype=bool)
    return select_size(
        family.name,
        patients["annulus_area_mm2"],
        patients["annulus_perimeter_mm"],
        out_of_chart=out_of_chart,
    )


def random_effects(patient_seed: np.ndarray) -> dict[str, np.ndarray]:
    """The model's per-patient standard normal random effects (:data:`RANDOM_EFFECTS`)."""
    drawn = patient_normals(patient_seed, list(RANDOM_EFFECTS))
    return {
        "orifice": drawn["tavr.orifice"],
        "implant_depth": drawn["tavr.implant_depth"],
        **{k: drawn[k] for k in echo.STREAMS},
    }


class TAVRModel(Model):
    """Device–anatomy TAVR haemodynamics with a virtual echo.

    Device dict
    -----------
    family : {"balloon_expandable", "self_expanding"}
        Valve family; the size comes from its sizing chart (larger size in overlaps).
    size_mm : int or ndarray, optional
        Override the chart (must be a size of the family).
    leaflet_position : {"intra", "supra"}, optional
        Design override: where the leaflets sit.
    leaflet_tissue : {"bovine", "porcine"}, optional
        Design override (descriptive).
    leaflet_transmission : float, optional
        Design override: share of the annular under-expansion reaching the leaflets (0–1).
    implant_depth_mm : float, optional
        Design/procedure override: mean implant depth below the annulus (mm).
    label : str, optional
        Free text, ignored by the model.
    aorta_diameter_mm, orifice_coefficient_*, … : float or ndarray (n,), optional
        Any per-row setting (``_PER_ROW_SETTINGS``) may also be given with the device, where
        the engine puts uncertain parameters sampled per row; it overrides the setting.

    Settings
    --------
    See :data:`DEFAULT_SETTINGS`.

    Examples
    --------
    >>> import numpy as np
    >>> from models import run_batch
    >>> p = dict(heart_rate_bpm=[70.0], bsa_m2=[1.9], bmi_kg_m2=[26.0], lvef_pct=[60.0],
    ...          svi_ml_m2=[40.0], sbp_mmhg=[130.0], dbp_mmhg=[70.0],
    ...          annulus_area_mm2=[450.0], annulus_perimeter_mm=[76.0],
    ...          av_calcium_agatston=[2500.0], patient_seed=[12345])
    >>> out = run_batch(TAVRModel(), {k: np.array(v) for k, v in p.items()},
    ...                 {"family": "balloon_expandable"}, {})
    >>> int(out["valve_size_mm"][0]), int(out["status"][0])
    (26, 0)
    """

    name: ClassVar[str] = "tavr"
    version: ClassVar[str] = "2.0.1"
    inputs: ClassVar[dict[str, Variable]] = {
        "heart_rate_bpm": Variable("1/min", "heart rate", (35.0, 150.0)),
        "bsa_m2": Variable("m2", "body surface area (Mosteller)", (1.1, 3.2)),
        "bmi_kg_m2": Variable("kg m-2", "body mass index", (12.0, 70.0)),
        "lvef_pct": Variable("%", "left-ventricular ejection fraction", (10.0, 85.0)),
        "svi_ml_m2": Variable("mL m-2", "stroke volume index (echo)", (12.0, 90.0)),
        "sbp_mmhg": Variable("mmHg", "systolic blood pressure", (70.0, 250.0)),
        "dbp_mmhg": Variable("mmHg", "diastolic blood pressure", (30.0, 140.0)),
        "annulus_area_mm2": Variable("mm2", "CT aortic annulus area", (150.0, 1000.0)),
        "annulus_perimeter_mm": Variable("mm", "CT aortic annulus perimeter", (40.0, 120.0)),
        "av_calcium_agatston": Variable(
            "1", "aortic valve calcium score (Agatston units)", (0.0, 20000.0)
        ),
        "patient_seed": Variable("1", "the patient's random seed (cohort)", dtype="uint64"),
    }
    outputs: ClassVar[dict[str, Variable]] = {
        "mean_gradient_mmhg": Variable(
            "mmHg", "Doppler mean transvalvular gradient, virtual echo (4 v^2 over ejection)"
        ),
        "peak_gradient_mmhg": Variable("mmHg", "Doppler peak gradient, virtual echo (4 v_peak^2)"),
        "peak_velocity_m_s": Variable("m s-1", "peak jet velocity, virtual echo"),
        "eoa_cm2": Variable("cm2", "continuity-equation EOA, virtual echo"),
        "eoai_cm2_m2": Variable("cm2 m-2", "indexed EOA, virtual echo (eoa_cm2 / BSA)"),
        "ppm_class": Variable(
            "1",
            "prosthesis-patient mismatch, VARC-3, from the measured indexed EOA",
            dtype="int8",
            attrs={"flag_values": [0, 1, 2], "flag_meanings": "none moderate severe"},
        ),
        "mean_gradient_true_mmhg": Variable(
            "mmHg", "true Doppler-equivalent mean gradient, rho/2 mean(v^2), v = Q/A(Q)"
        ),
        "eoa_true_cm2": Variable("cm2", "true effective orifice area, SV / jet VTI"),
        "eoai_true_cm2_m2": Variable("cm2 m-2", "true indexed EOA"),
        "ppm_class_true": Variable(
            "1",
            "prosthesis-patient mismatch, VARC-3, from the true indexed EOA",
            dtype="int8",
            attrs={"flag_values": [0, 1, 2], "flag_meanings": "none moderate severe"},
        ),
        "net_mean_gradient_mmhg": Variable(
            "mmHg", "mean net (catheter) pressure drop over ejection, Garcia model"
        ),
        "eoa_max_cm2": Variable("cm2", "fully open effective orifice area of the deployed valve"),
        "oversizing_pct": Variable("%", "nominal valve area over the circularised annulus area"),
        "frame_expansion_pct": Variable("%", "frame area at the annulus, % of nominal"),
        "leaflet_expansion_pct": Variable("%", "frame area at the leaflet level, % of nominal"),
        "implant_depth_mm": Variable("mm", "implant depth below the annulus"),
        "valve_size_mm": Variable("mm", "labelled valve size", dtype="int16"),
        "sizing_off_chart": Variable(
            "1",
            "annulus outside the family's sizing chart (nearest size used)",
            dtype="int8",
            attrs={"flag_values": [0, 1], "flag_meanings": "in_chart off_chart"},
        ),
        "stroke_volume_ml": Variable("mL", "true forward stroke volume"),
        "cardiac_output_l_min": Variable("L min-1", "true cardiac output"),
        "ejection_time_s": Variable("s", "aortic valve opening duration"),
        "lv_peak_pressure_mmhg": Variable("mmHg", "peak LV systolic pressure"),
        "aortic_systolic_mmhg": Variable("mmHg", "peak aortic pressure"),
        "aortic_diastolic_mmhg": Variable("mmHg", "minimum aortic pressure"),
        "lv_stroke_work_j": Variable("J", "LV external stroke work, loop integral of P dV"),
        "cycles": Variable("1", "cardiac cycles run to periodic steady state", dtype="int32"),
        "personalisation_residual_pct": Variable(
            "%", "stroke-volume mismatch of the personalised baseline, 100 (SV - SV_target)/SV"
        ),
        "waveform_time_s": Variable("s", "time of the waveform samples", dims=("time",)),
        "lv_pressure_mmhg": Variable("mmHg", "LV pressure, last cycle", dims=("time",)),
        "aortic_pressure_mmhg": Variable("mmHg", "aortic pressure, last cycle", dims=("time",)),
        "valve_flow_ml_s": Variable("mL s-1", "aortic valve flow, last cycle", dims=("time",)),
    }

    #: RK4 between valve events; the events (closure jump of dQ/dt, mitral and opening
    #: kinks) give local errors O(h²) a fixed number of times per cycle: global order 2
    #: (kernel docstring; measured by code_verification).
    formal_order: ClassVar[float | None] = 2.0
    step_setting: ClassVar[tuple[str, float] | None] = ("dt_s", DEFAULT_SETTINGS["dt_s"])
    #: Time window (days after implantation) the model's state describes.
    timepoint_days: ClassVar[tuple[float, float] | None] = (0.0, 90.0)
    calibration_parameters: ClassVar[tuple[str, ...]] = CALIBRATION_PARAMETERS
    derived_outputs: ClassVar[dict[str, tuple[str, ...]]] = {
        "ppm_class": ("eoai_cm2_m2",),
        "ppm_class_true": ("eoai_true_cm2_m2",),
    }
    card_file: ClassVar[str | None] = "card.yaml"
    size_output: ClassVar[str | None] = "valve_size_mm"
    #: VARC-3 events (VARC-3 Writing Committee, Eur Heart J 2021;42:1825-1857).
    events: ClassVar[dict[str, Event]] = {
        "ppm_moderate_or_severe": Event(
            "ppm_class", "moderate or severe PPM", category="1|2", source="VARC-3"
        ),
        "ppm_severe": Event("ppm_class", "severe PPM", category="2", source="VARC-3"),
        "high_gradient": Event(
            "mean_gradient_mmhg",
            "mean gradient >= 20 mmHg",
            threshold=">=20",
            source="VARC-3 haemodynamic valve deterioration, stage 2",
        ),
    }

    def code_verification(self) -> dict[str, Any]:
        """Self-convergence of the coupled kernel, valve events included.

        See :func:`models.tavr.verification.self_convergence`.
        """
        from .verification import self_convergence

        return self_convergence()

    def time_step_study(
        self,
        patients: Mapping[str, np.ndarray],
        device: Mapping[str, Any],
        dts: list[float],
        settings: Mapping[str, Any],
    ) -> dict[str, Any]:
        """Endpoints at the time steps ``dts``, personalised once (see
        :func:`models.tavr.verification.time_step_study`)."""
        from .verification import time_step_study

        return time_step_study(self, patients, device, dts, settings)

    def check(self, device: Mapping[str, Any], settings: Mapping[str, Any]) -> None:
        """Reject unknown settings or device keys, an unknown family or a size it lacks.

        Raises
        ------
        TAVRSettingsError, TAVRDeviceError
        """
        _settings(settings)
        family = _checked_family(device)
        size = device.get("size_mm")
        if size is not None and np.ndim(size) == 0 and int(size) not in family.sizes_mm:
            raise TAVRDeviceError(
                f"TAVR device key 'size_mm' is {size!r}; {family.name} sizes: {list(family.sizes_mm)}"
            )

    def output_dims(self, settings: Mapping[str, Any]) -> dict[str, int]:
        """``{"time": waveform_points}`` (0 when waveforms are not requested)."""
        return {"time": int(_settings(settings)["waveform_points"])}

    def deployed_valves(
        self,
        patients: Mapping[str, np.ndarray],
        device: Mapping[str, Any],
        s: Mapping[str, Any],
        effects: Mapping[str, np.ndarray],
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """Deployment of ``device`` in each patient: geometry, size and off-chart flags."""
        n = np.asarray(patients["heart_rate_bpm"]).shape[0]
        family = _checked_family(device)
        size, off = _sizes(family, device, patients, n, s["out_of_chart"])
        unknown = sorted({int(v) for v in np.unique(size)} - set(family.sizes_mm) - {0})
        if unknown:
            raise TAVRDeviceError(
                f"device key 'size_mm' has {unknown} for family {family.name!r}; "
                f"allowed sizes: {list(family.sizes_mm)}"
            )
        row = {k: _row(s[k], n, k) for k in _PER_ROW_SETTINGS}
        geometry = deploy(
            family, np.where(size > 0, size, family.sizes_mm[0]), patients, effects, {**s, **row}
        )
        geometry["eoa_max_cm2"] = np.where(size > 0, geometry["eoa_max_cm2"], np.nan)
        return geometry, size, off

    def simulate(
        self,
        patients: Mapping[str, np.ndarray],
        device: Mapping[str, Any],
        settings: Mapping[str, Any],
    ) -> dict[str, np.ndarray]:
        """Simulate a batch with one device arm (vectorised; one compiled loop per phase).

        Raises
        ------
        TAVRDeviceError, TAVRSettingsError
            For an unknown device/settings key or value (configuration errors, not patients).
        """
        s = _settings(settings)
        # Per-patient physical parameters may come with the device (the engine routes UQ
        # samples there); they override the settings' values.
        s.update({k: device[k] for k in _PER_ROW_SETTINGS if k in device})
        n = np.asarray(patients["heart_rate_bpm"]).shape[0]
        effects = random_effects(patients["patient_seed"])
        geometry, size, off = self.deployed_valves(patients, device, s, effects)
        fit = personalise(patients, s)
        valve = valve_table(
            np.where(np.isfinite(geometry["eoa_max_cm2"]), geometry["eoa_max_cm2"], 1.0), s
        )
        out, converged = run_device(fit, valve, s)
        if s["measurement"] == "virtual_echo":
            measured = echo.measure(out, patients, effects, s)
        else:
            exact = {**s, "lvot_diameter_cv": 0.0, "jet_vti_cv": 0.0, "lvot_vti_cv": 0.0}
            measured = echo.measure(out, patients, effects, {**exact, "lvot_area_ratio": 1.0})
        bsa = np.asarray(patients["bsa_m2"])
        out.update(measured)
        out.update(geometry)
        out["eoai_true_cm2_m2"] = out["eoa_true_cm2"] / bsa
        out.update(self.derive(out, patients))
        out.update(
            cardiac_output_l_min=out["stroke_volume_ml"]
            * np.asarray(patients["heart_rate_bpm"])
            / 1000.0,
            valve_size_mm=size.astype(np.int16),
            sizing_off_chart=off.astype(np.int8),
            personalisation_residual_pct=fit["residual_pct"],
        )
        for key in ("vti_cm", "mean_v2", "stroke_volume_echo_ml"):
            out.pop(key)
        status = np.full(n, STATUS["ok"], dtype=np.int8)
        failed = ~converged | (fit["miss_pct"] > float(s["max_personalisation_miss_pct"]))
        status[failed] = STATUS["solver_failure"]
        invalid = ~np.isfinite(geometry["eoa_max_cm2"]) | (
            np.asarray(patients["sbp_mmhg"]) - np.asarray(patients["dbp_mmhg"]) < 10.0
        )
        status[invalid] = STATUS["invalid_input"]
        out["status"] = status
        return out

    def derive(
        self, outputs: Mapping[str, np.ndarray], patients: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """VARC-3 PPM classes from the indexed EOA (measured and true) and the patient's BMI.

        A missing indexed EOA (failed simulation) gives class −1.
        """
        out = {}
        for cls, (eoai,) in self.derived_outputs.items():
            if eoai in outputs:
                x = np.asarray(outputs[eoai], dtype=float)
                classes = echo.ppm_class(np.nan_to_num(x, nan=np.inf), patients["bmi_kg_m2"])
                out[cls] = np.where(np.isfinite(x), classes, -1).astype(np.int8)
        return out

    def at_timepoint(
        self,
        outputs: Mapping[str, np.ndarray],
        patients: Mapping[str, np.ndarray],
        days: float,
        settings: Mapping[str, Any],
    ) -> dict[str, np.ndarray] | str:
        """The outputs as they would be measured ``days`` after implantation.

        Within :attr:`timepoint_days` (0–90 days: discharge, 30 and 60 days) the outputs are
        returned as they are: no early remodelling is modelled. From 90 days to
        ``max_follow_up_days`` (730) the mean gradient rises by ``gradient_drift_per_year``
        (2.5 % per year, relative), the orifice shrinking accordingly at the same flow
        (EOA ∝ gradient^-1/2): mean gradient of SAPIEN valves 9.2 mmHg at 3 months and
        10.3 mmHg at 5 years in PARTNER 1 (Douglas PS, et al. JAMA Cardiol
        2017;2:1197–1206, +2.4 %/year), CoreValve 9 ± 5 mmHg at discharge and 12 ± 4 mmHg at
        12 years (Italian CoreValve registry, +2.7 %/year). Beyond that the comparator is
        excluded: structural valve deterioration, valve thrombosis and the selection of
        survivors are not modelled.

        Returns
        -------
        dict of str to ndarray or str
            The projected outputs, or the reason the model cannot predict that time point.
        """
        s = _settings(settings)
        if days <= self.timepoint_days[1]:
            return dict(outputs)
        if days > float(s["max_follow_up_days"]):
            return (
                f"model {self.name} {self.version} predicts up to "
                f"{float(s['max_follow_up_days']):.0f} days after implantation; at {days:.0f} "
                "days structural valve deterioration, valve thrombosis and survivor selection "
                "(not modelled) shape the comparator"
            )
        years = (days - self.timepoint_days[1]) / 365.25
        grow = (1.0 + float(s["gradient_drift_per_year"])) ** years
        shrink = grow**-0.5
        out = dict(outputs)
        for key in ("mean_gradient_mmhg", "peak_gradient_mmhg", "mean_gradient_true_mmhg"):
            out[key] = outputs[key] * grow
        out["peak_velocity_m_s"] = outputs["peak_velocity_m_s"] * grow**0.5
        for key in ("eoa_cm2", "eoai_cm2_m2", "eoa_true_cm2", "eoai_true_cm2_m2"):
            out[key] = outputs[key] * shrink
        out.update(self.derive(out, patients))
        return out
