"""TAVR haemodynamics: personalised LV – transcatheter valve – Windkessel model.

:class:`TAVRModel` turns each virtual patient's covariates into lumped parameters
(:func:`personalise`), sizes the device from the annulus, runs the compiled kernel
(:mod:`models.tavr.kernel`) to periodic steady state and derives echo-style endpoints.

Numbers used here, with their sources (``shared/reference/tavr.md`` unless stated):

* double-Hill elastance and T_max = 0.2 + 0.15·t_c — Stergiopulos et al. 1996;
* E_max 2–2.6 mmHg/mL, E_min 0.03–0.06 mmHg/mL, V_0 10–12 mL (V_0 = 10 mL used);
* Windkessel Z_c 0.015–0.1, R 0.8–1.2 mmHg·s/mL, C 1.4–1.8 mL/mmHg (Z_c = 0.1·R used, the
  upper end; chosen after comparison with the validation table — see ``card.yaml``);
* LVET = 415.5 − 1.65·HR ms (mean of Weissler's sex-specific regressions, Weissler et al.,
  Circulation 1968), the ejection-time target that fixes T_max per patient;
* Garcia energy-loss coefficient ELCo = EOA·A_a/(A_a − EOA), blood ρ = 1050 kg/m³,
  1 mmHg = 133.322 Pa, ascending aorta 30–35 mm (32.5 mm default) — Garcia et al. 2005;
* Doppler gradient ΔP = ρ/2·v², v = Q/EOA; Gorlin AVA = Q_sys/(44.3·√ΔP_mean);
* VARC-3 PPM thresholds on EOAi: moderate ≤ 0.85, severe ≤ 0.65 cm²/m²; BMI ≥ 30 kg/m²:
  moderate ≤ 0.70, severe ≤ 0.55 (VARC-3 Writing Committee, Eur Heart J 2021;42:1825–1857).

Assumptions that are this model's own (not from the reference file) are listed in
``card.yaml``: mean left-atrial pressure 10 mmHg, mitral resistance 0.005 mmHg·s/mL and the
unobstructed reference valve (EOA 3.0 cm², lower end of the normal 3–4 cm² of Baumgartner et
al., J Am Soc Echocardiogr 2009;22:1–23) used for personalisation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from ..base import STATUS, Model, Variable
from . import kernel
from .devices import FAMILIES, TAVRDeviceError, _family, reference_eoa_cm2, select_size

__all__ = [
    "DEFAULT_SETTINGS",
    "TAVRModel",
    "TAVRSettingsError",
    "garcia_coefficients",
    "endpoints",
    "personalise",
    "run_device",
]

MMHG_PA = 133.322  # Pa per mmHg
J_PER_MMHG_ML = MMHG_PA * 1e-6  # J per mmHg·mL
GORLIN_CONSTANT = 44.3  # Gorlin formula constant (cm², mL/s, mmHg)

#: Default settings; every key may be overridden, unknown keys are rejected.
DEFAULT_SETTINGS: dict[str, Any] = {
    "dt_s": 1e-3,  # RK4 step (s); T/dt rounded to an integer number of steps per cycle
    "max_cycles": 60,  # cap on cycles of the device run
    "steady_tol": 1e-4,  # relative cycle-to-cycle change that counts as periodic steady state
    "waveform_points": 0,  # samples per cycle of the waveform outputs (0: none)
    "ejection_time_target": "weissler",  # {"weissler", "none"}: fit T_max to LVET(HR)
    "personalise_valve": "reference",  # {"reference", "device"}: valve present while fitting
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
}
_CHOICES = {
    "personalise_valve": ("reference", "device"),
    "out_of_chart": ("nearest", "invalid"),
    "ejection_time_target": ("weissler", "none"),
}
#: Settings that may be arrays of shape (n,) (uncertain inputs for UQ).
_PER_ROW_SETTINGS = (
    "reference_eoa_cm2",
    "aorta_diameter_mm",
    "blood_density_kg_m3",
    "left_atrial_pressure_mmhg",
    "mitral_resistance_mmhg_s_ml",
    "unstressed_volume_ml",
)
#: Keys the engine adds to every model's settings (ignored here).
_ENGINE_KEYS = ("arm", "runs_dir")
_DEVICE_KEYS = (
    "family",
    "size_mm",
    "eoa_scale",
    "loss_coefficient",
    "eoa_cm2",
    "label",
    *_PER_ROW_SETTINGS,
)


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


def garcia_coefficients(
    eoa_cm2: np.ndarray,
    aorta_diameter_mm: np.ndarray,
    blood_density_kg_m3: np.ndarray,
    loss_coefficient: np.ndarray | float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Inertance and energy-loss coefficient of the Garcia valve model, in mmHg units.

    Garcia et al. (2005): ΔP = (2πρ/√ELCo)·dQ/dt + (ρ/(2·ELCo²))·Q|Q| in SI units, with
    ELCo = EOA·A_a/(A_a − EOA). ``loss_coefficient`` scales the energy-loss term (1 = Garcia),
    the leaflet/jet design parameter of a design sweep.

    Parameters
    ----------
    eoa_cm2 : ndarray
        Effective orifice area (cm²); must be smaller than the aortic area.
    aorta_diameter_mm : ndarray
        Ascending aorta diameter (mm).
    blood_density_kg_m3 : ndarray
        ρ (kg/m³).
    loss_coefficient : ndarray or float
        Multiplier of the energy-loss term (dimensionless).

    Returns
    -------
    inertance : ndarray
        2πρ/√ELCo in mmHg·s²/mL.
    k_loss : ndarray
        loss_coefficient·ρ/(2·ELCo²) in mmHg·s²/mL².

    References
    ----------
    Garcia D, Pibarot P, Durand LG. J Biomech 2005;38:1303–1311.
    doi:10.1016/j.jbiomech.2004.06.018
    """
    eoa = np.asarray(eoa_cm2) * 1e-4
    area_ao = np.pi * (np.asarray(aorta_diameter_mm) * 1e-3 / 2.0) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        elco = np.where(eoa < area_ao, eoa * area_ao / (area_ao - eoa), np.nan)
        rho = np.asarray(blood_density_kg_m3)
        inertance = 2.0 * np.pi * rho / np.sqrt(elco) / MMHG_PA * 1e-6
        k_loss = np.asarray(loss_coefficient) * rho / (2.0 * elco**2) / MMHG_PA * 1e-12
    return inertance, k_loss


def _targets(patients: Mapping[str, np.ndarray], v0: np.ndarray) -> dict[str, np.ndarray]:
    sv = np.asarray(patients["svi_ml_m2"], dtype=np.float64) * patients["bsa_m2"]
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
    inertance: np.ndarray,
    k_loss: np.ndarray,
    state: np.ndarray,
    dt_s: float,
    s: Mapping[str, Any],
    *,
    targets: np.ndarray | None = None,
    max_cycles: int,
    n_wave: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """One compiled pass over the batch; ``targets`` switches personalisation on."""
    n = state.shape[0]
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
        inertance,
        k_loss,
        state,
        targets is not None,
        np.zeros((n, 5)) if targets is None else targets,
        float(s["zc_ratio"]),
        int(max_cycles),
        float(s["steady_tol"]),
        float(s["personalisation_tol"]),
        waves,
        results,
    )
    return results, waves


def personalise(
    patients: Mapping[str, np.ndarray],
    eoa_cm2: np.ndarray,
    settings: Mapping[str, Any] | None = None,
    *,
    loss_coefficient: np.ndarray | float = 1.0,
) -> dict[str, np.ndarray]:
    """Fit E_max, E_min, R, C (and Z_c) so each patient's baseline matches its covariates.

    Targets: cycle length 60/HR; stroke volume SV = SVI·BSA; EDV = SV/LVEF, ESV = EDV − SV;
    systolic and diastolic aortic pressure. Closed-form first guesses (E_min = P_la/(EDV − V_0),
    E_max = 0.9·SBP/(ESV − V_0), R = MAP/CO, C = 0.8·SV/PP) are refined by a damped fixed-point
    iteration inside the compiled kernel, one update per simulated cycle, for the whole batch:
    with the step max(``dt_s``, ``personalisation_dt_s``) (4 ms by default: the fitted
    targets move by ~1e-4 relative between 4 ms and 1 ms, see ``verification.time_step_study``,
    far below the 0.5 % fitting tolerance).

    Parameters
    ----------
    patients : mapping of str to ndarray
        ``heart_rate_bpm``, ``bsa_m2``, ``lvef_pct``, ``svi_ml_m2``, ``sbp_mmhg``, ``dbp_mmhg``.
    eoa_cm2 : ndarray, shape (n,)
        EOA of the valve present while fitting (cm²).
    settings : mapping, optional
        Overrides of :data:`DEFAULT_SETTINGS`.
    loss_coefficient : ndarray or float
        Garcia energy-loss multiplier of that valve.

    Returns
    -------
    dict of str to ndarray
        Parameters (``period_s``, ``t_max``, ``e_max``, ``e_min``, ``v_0``, ``p_la``,
        ``r_mv``, ``z_c``, ``r_p``, ``c_p``), the end state ``state`` (n, 3), ``sv_target``,
        ``residual_pct`` = 100·(SV_model − SV_target)/SV_target, ``miss_pct`` (largest
        relative miss of EDV, ESV, SBP, DBP and, if targeted, ejection time, %),
        ``converged`` (bool), ``cycles`` and the kernel ``results`` of the last fitted cycle.
    """
    s = _settings(settings or {})
    n = np.asarray(patients["heart_rate_bpm"]).shape[0]
    row = {k: _row(s[k], n, k) for k in _PER_ROW_SETTINGS}
    tg = _targets(patients, row["unstressed_volume_ml"])
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
    inertance, k_loss = garcia_coefficients(
        eoa_cm2, row["aorta_diameter_mm"], row["blood_density_kg_m3"], loss_coefficient
    )
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
        inertance,
        k_loss,
        state,
        max(float(s["dt_s"]), float(s["personalisation_dt_s"])),
        s,
        targets=targets,
        max_cycles=int(s["max_personalisation_cycles"]),
    )
    cycles = results[:, kernel.RES["cycles"]].astype(np.int64)
    res = kernel.RES
    miss = np.column_stack(
        [
            (results[:, res["edv"]] - tg["edv"]) / tg["edv"],
            (results[:, res["esv"]] - tg["esv"]) / tg["edv"],
            (results[:, res["sbp"]] - tg["sbp"]) / tg["sbp"],
            (results[:, res["dbp"]] - tg["dbp"]) / tg["dbp"],
            np.where(
                et_target > 0,
                (results[:, res["ejection_time"]] - et_target)
                / np.where(et_target > 0, et_target, 1),
                0.0,
            ),
        ]
    )
    sv_model = results[:, res["stroke_volume"]]
    params.update(
        state=state,
        sv_target=tg["sv"],
        residual_pct=100.0 * (sv_model - tg["sv"]) / tg["sv"],
        miss_pct=100.0 * np.abs(miss).max(axis=1),
        converged=results[:, res["converged"]] > 0.5,
        cycles=cycles,
        results=results,
    )
    return params


def run_device(
    fit: Mapping[str, np.ndarray],
    patients: Mapping[str, np.ndarray],
    eoa_cm2: np.ndarray,
    settings: Mapping[str, Any] | None = None,
    *,
    loss_coefficient: np.ndarray | float = 1.0,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Run personalised patients with a valve of ``eoa_cm2`` to periodic steady state.

    Parameters
    ----------
    fit : mapping
        Output of :func:`personalise` (its ``state`` is copied, not modified).
    patients : mapping of str to ndarray
        Needs ``bsa_m2``, ``bmi_kg_m2``, ``heart_rate_bpm``.
    eoa_cm2 : ndarray, shape (n,)
        Device EOA (cm²).
    settings : mapping, optional
        Overrides of :data:`DEFAULT_SETTINGS` (``dt_s``, ``max_cycles``, ``steady_tol``,
        ``waveform_points`` …).
    loss_coefficient : ndarray or float

    Returns
    -------
    endpoints : dict of str to ndarray
        See :func:`endpoints`; plus the waveform arrays (n, waveform_points).
    converged : ndarray of bool
    """
    s = _settings(settings or {})
    n = np.asarray(eoa_cm2).shape[0]
    row = {k: _row(s[k], n, k) for k in _PER_ROW_SETTINGS}
    inertance, k_loss = garcia_coefficients(
        eoa_cm2, row["aorta_diameter_mm"], row["blood_density_kg_m3"], loss_coefficient
    )
    ok = np.isfinite(inertance)
    n_wave = int(s["waveform_points"])
    results, waves = _run_kernel(
        fit,
        np.where(ok, inertance, 1.0),
        np.where(ok, k_loss, 1.0),
        np.array(fit["state"], dtype=np.float64, copy=True),
        float(s["dt_s"]),
        s,
        max_cycles=int(s["max_cycles"]),
        n_wave=n_wave,
    )
    out = endpoints(results, eoa_cm2, k_loss, patients, row["blood_density_kg_m3"])
    out.update(
        waveform_time_s=fit["period_s"][:, None] * np.arange(n_wave)[None, :] / max(n_wave, 1),
        lv_pressure_mmhg=waves[:, 0],
        aortic_pressure_mmhg=waves[:, 1],
        valve_flow_ml_s=waves[:, 2],
    )
    return out, ok & (results[:, kernel.RES["converged"]] > 0.5)


def _checked_family(device: Mapping[str, Any]):
    """The device's valve family, after rejecting unknown keys and a missing or unknown family."""
    unknown = sorted(set(device) - set(_DEVICE_KEYS))
    if unknown:
        raise TAVRDeviceError(
            f"TAVR device keys {unknown} are unknown; allowed keys: {list(_DEVICE_KEYS)}"
        )
    if "family" not in device:
        raise TAVRDeviceError(f"TAVR device needs key 'family'; allowed values: {sorted(FAMILIES)}")
    return _family(device["family"])


def _device_eoa(
    device: Mapping[str, Any], patients: Mapping[str, np.ndarray], n: int, out_of_chart: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    family = _checked_family(device).name
    if device.get("size_mm") is not None:
        size = np.broadcast_to(np.asarray(device["size_mm"], dtype=np.int64), (n,)).copy()
        off = np.zeros(n, dtype=bool)
    else:
        size, off = select_size(
            family,
            patients["annulus_area_mm2"],
            patients["annulus_perimeter_mm"],
            out_of_chart=out_of_chart,
        )
    if device.get("eoa_cm2") is not None:
        eoa = _row(device["eoa_cm2"], n, "eoa_cm2")
        if family not in FAMILIES:
            raise TAVRDeviceError(
                f"device key 'family' is {family!r}; allowed values: {sorted(FAMILIES)}"
            )
    else:
        eoa = reference_eoa_cm2(family, size)
    eoa = eoa * _row(device.get("eoa_scale", 1.0), n, "eoa_scale")
    loss = _row(device.get("loss_coefficient", 1.0), n, "loss_coefficient")
    return eoa, loss, size, off


class TAVRModel(Model):
    """Personalised lumped-parameter haemodynamics of a transcatheter aortic valve.

    Device dict
    -----------
    family : {"balloon_expandable", "self_expanding"}
        Valve family; the size comes from its sizing chart (larger size in overlaps).
    size_mm : int or ndarray, optional
        Override the chart (must be a size of the family's table).
    eoa_scale : float or ndarray (n,), default 1.0
        Multiplier of the table EOA (design factor).
    loss_coefficient : float or ndarray (n,), default 1.0
        Multiplier of Garcia's energy-loss term (leaflet/jet design factor).
    eoa_cm2 : float or ndarray (n,), optional
        Explicit EOA (cm²) replacing the table (a novel design).
    label : str, optional
        Free text, ignored by the model.
    aorta_diameter_mm, blood_density_kg_m3, … : float or ndarray (n,), optional
        Any per-row setting (``_PER_ROW_SETTINGS``) may also be given with the device, where
        the engine puts uncertain parameters sampled per row; it overrides the setting.

    Settings
    --------
    See :data:`DEFAULT_SETTINGS` (``dt_s``, ``max_cycles``, ``steady_tol``,
    ``waveform_points``, ``personalise_valve``, …). Keys listed in ``_PER_ROW_SETTINGS``
    accept arrays of shape (n,).

    Examples
    --------
    >>> import numpy as np
    >>> from models import run_batch
    >>> p = dict(heart_rate_bpm=[70.0], bsa_m2=[1.9], bmi_kg_m2=[26.0], lvef_pct=[60.0],
    ...          svi_ml_m2=[40.0], sbp_mmhg=[130.0], dbp_mmhg=[70.0],
    ...          annulus_area_mm2=[450.0], annulus_perimeter_mm=[76.0])
    >>> out = run_batch(TAVRModel(), {k: np.array(v) for k, v in p.items()},
    ...                 {"family": "balloon_expandable"}, {})
    >>> int(out["valve_size_mm"][0]), int(out["status"][0])
    (26, 0)
    """

    name: ClassVar[str] = "tavr"
    version: ClassVar[str] = "1.1.0"
    inputs: ClassVar[dict[str, Variable]] = {
        "heart_rate_bpm": Variable("1/min", "heart rate", (35.0, 150.0)),
        "bsa_m2": Variable("m2", "body surface area (Mosteller)", (1.1, 3.2)),
        "bmi_kg_m2": Variable("kg m-2", "body mass index", (12.0, 70.0)),
        "lvef_pct": Variable("%", "left-ventricular ejection fraction", (10.0, 85.0)),
        "svi_ml_m2": Variable("mL m-2", "stroke volume index", (12.0, 90.0)),
        "sbp_mmhg": Variable("mmHg", "systolic blood pressure", (70.0, 250.0)),
        "dbp_mmhg": Variable("mmHg", "diastolic blood pressure", (30.0, 140.0)),
        "annulus_area_mm2": Variable("mm2", "CT aortic annulus area", (150.0, 1000.0)),
        "annulus_perimeter_mm": Variable("mm", "CT aortic annulus perimeter", (40.0, 120.0)),
    }
    outputs: ClassVar[dict[str, Variable]] = {
        "mean_gradient_mmhg": Variable(
            "mmHg", "Doppler mean transvalvular gradient, mean of rho/2 v^2 over ejection"
        ),
        "peak_gradient_mmhg": Variable("mmHg", "Doppler peak gradient rho/2 v_peak^2"),
        "net_mean_gradient_mmhg": Variable(
            "mmHg", "mean net (catheter) pressure drop over ejection, Garcia model"
        ),
        "eoa_cm2": Variable("cm2", "device effective orifice area used by the model"),
        "eoa_gorlin_cm2": Variable(
            "cm2", "Gorlin area from mean systolic flow and Doppler mean gradient"
        ),
        "eoa_continuity_cm2": Variable("cm2", "continuity-equation EOA, SV / jet VTI"),
        "eoai_cm2_m2": Variable("cm2 m-2", "indexed EOA, eoa_cm2 / BSA"),
        "ppm_class": Variable(
            "1",
            "prosthesis-patient mismatch, VARC-3 (BMI >= 30 thresholds)",
            dtype="int8",
            attrs={"flag_values": [0, 1, 2], "flag_meanings": "none moderate severe"},
        ),
        "valve_size_mm": Variable("mm", "labelled valve size", dtype="int16"),
        "sizing_off_chart": Variable(
            "1",
            "annulus outside the family's sizing chart (nearest size used)",
            dtype="int8",
            attrs={"flag_values": [0, 1], "flag_meanings": "in_chart off_chart"},
        ),
        "peak_velocity_m_s": Variable("m s-1", "peak jet velocity Q/EOA"),
        "stroke_volume_ml": Variable("mL", "forward stroke volume"),
        "cardiac_output_l_min": Variable("L min-1", "cardiac output"),
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

    #: Fixed-step RK4 between valve events, but the valve opens and closes at step boundaries
    #: (events are not located inside a step), so endpoints that depend on event times
    #: converge at first order in dt.
    formal_order: ClassVar[float | None] = 1.0
    step_setting: ClassVar[tuple[str, float] | None] = ("dt_s", DEFAULT_SETTINGS["dt_s"])

    def code_verification(self) -> dict[str, Any]:
        """The kernel's RK4 Windkessel under a prescribed flow against its closed form.

        Formal order 4 (no events in this problem); see
        :func:`models.tavr.verification.windkessel_exact`.
        """
        from .kernel import windkessel_prescribed_flow
        from .verification import observed_order, windkessel_exact

        args = dict(q_mean=250.0, q_amp=250.0, period=0.8, r=1.0, c=1.5, zc=0.08, pc0=60.0)
        steps = (25, 50, 100, 200)
        errors = []
        for n_steps in steps:
            numeric = windkessel_prescribed_flow(*args.values(), n_steps, 3)
            t = np.linspace(0.0, 3 * args["period"], 3 * n_steps + 1)
            errors.append(float(np.max(np.abs(numeric - windkessel_exact(t, **args)))))
        orders = [float(o) for o in observed_order(errors)]
        return {
            "test": "3-element Windkessel under Q(t) = Qm - Qa cos(2 pi t / T), closed form",
            "formal_order": 4.0,
            "steps_per_cycle": list(steps),
            "max_error_mmhg": errors,
            "observed_order": orders,
            "order_error_abs": abs(orders[-1] - 4.0),
            "finest_error_mmhg": errors[-1],
        }

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

        return time_step_study(patients, device, dts, settings)

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
        eoa, loss, size, off = _device_eoa(device, patients, n, s["out_of_chart"])
        if s["personalise_valve"] == "device":
            fit = personalise(patients, eoa, s, loss_coefficient=loss)
        else:
            fit = personalise(patients, _row(s["reference_eoa_cm2"], n, "reference_eoa_cm2"), s)
        out, converged = run_device(fit, patients, eoa, s, loss_coefficient=loss)
        out.update(
            valve_size_mm=size.astype(np.int16),
            sizing_off_chart=off.astype(np.int8),
            personalisation_residual_pct=fit["residual_pct"],
        )
        status = np.full(n, STATUS["ok"], dtype=np.int8)
        failed = ~converged | (fit["miss_pct"] > float(s["max_personalisation_miss_pct"]))
        status[failed] = STATUS["solver_failure"]
        invalid = ~np.isfinite(eoa) | (
            np.asarray(patients["sbp_mmhg"]) - np.asarray(patients["dbp_mmhg"]) < 10.0
        )
        status[invalid] = STATUS["invalid_input"]
        out["status"] = status
        return out


def endpoints(
    results: np.ndarray,
    eoa_cm2: np.ndarray,
    k_loss: np.ndarray,
    patients: Mapping[str, np.ndarray],
    blood_density_kg_m3: np.ndarray,
) -> dict[str, np.ndarray]:
    """Clinical endpoints from the kernel's per-cycle results (vectorised).

    Doppler gradients use the jet velocity v = Q/EOA and ΔP = ρ/2·v² (no pressure recovery),
    like the echo reference table; the net gradient is the mean Garcia pressure drop over
    ejection, K·∫Q²dt / ET (the inertial term integrates to zero between valve opening and
    closure, where Q = 0).
    """
    res = kernel.RES
    sv = results[:, res["stroke_volume"]]
    et = results[:, res["ejection_time"]]
    int_q2 = results[:, res["int_q2"]]
    rho = np.asarray(blood_density_kg_m3)
    with np.errstate(divide="ignore", invalid="ignore"):
        to_mmhg = 0.5 * rho * 1e-4 / MMHG_PA  # (mL/s / cm²)² → (cm/s)² → (m/s)² → mmHg
        mean_grad = to_mmhg * int_q2 / eoa_cm2**2 / et
        v_peak = results[:, res["q_peak"]] / eoa_cm2 * 1e-2
        gorlin = (sv / et) / (GORLIN_CONSTANT * np.sqrt(mean_grad))
        vti_cm = sv / eoa_cm2  # ∫ Q/EOA dt over ejection (cm); Q = 0 while closed
        continuity = sv / vti_cm
        eoai = eoa_cm2 / np.asarray(patients["bsa_m2"])
        net = k_loss * int_q2 / et
    bmi = np.asarray(patients["bmi_kg_m2"])
    moderate = np.where(bmi >= 30.0, 0.70, 0.85)
    severe = np.where(bmi >= 30.0, 0.55, 0.65)
    ppm = np.where(eoai <= severe, 2, np.where(eoai <= moderate, 1, 0)).astype(np.int8)
    hr = np.asarray(patients["heart_rate_bpm"])
    return {
        "mean_gradient_mmhg": mean_grad,
        "peak_gradient_mmhg": 0.5 * rho * v_peak**2 / MMHG_PA,
        "net_mean_gradient_mmhg": net,
        "eoa_cm2": eoa_cm2,
        "eoa_gorlin_cm2": gorlin,
        "eoa_continuity_cm2": continuity,
        "eoai_cm2_m2": eoai,
        "ppm_class": ppm,
        "peak_velocity_m_s": v_peak,
        "stroke_volume_ml": sv,
        "cardiac_output_l_min": sv * hr / 1000.0,
        "ejection_time_s": et,
        "lv_peak_pressure_mmhg": results[:, res["lv_peak"]],
        "aortic_systolic_mmhg": results[:, res["sbp"]],
        "aortic_diastolic_mmhg": results[:, res["dbp"]],
        "lv_stroke_work_j": results[:, res["stroke_work"]] * J_PER_MMHG_ML,
        "cycles": results[:, res["cycles"]].astype(np.int32),
    }
