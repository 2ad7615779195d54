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
from . import echo, verification
from .deployment import deploy
from .devices import FAMILIES, TAVRDeviceError, family_with, select_size
from .physiology import (
    CALIBRATION_PARAMETERS,
    DEFAULT_SETTINGS,
    DEVICE_KEYS,
    PER_ROW_SETTINGS,
    TAVRSettingsError,
    checked_settings,
    personalise,
    random_effects,
    row_values,
    run_device,
    valve_table,
)

__all__ = [
    "CALIBRATION_PARAMETERS",
    "DEFAULT_SETTINGS",
    "TAVRModel",
    "TAVRSettingsError",
    "personalise",
    "run_device",
]


def _checked_family(device: Mapping[str, Any]):
    """The device's valve family (with design overrides), after rejecting unknown keys."""
    unknown = sorted(set(device) - set(DEVICE_KEYS))
    if unknown:
        raise TAVRDeviceError(
            f"TAVR device keys {unknown} are unknown; allowed keys: {list(DEVICE_KEYS)}"
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
        Any per-row setting (``PER_ROW_SETTINGS``) may also be given with the device, where
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
        return verification.self_convergence()

    def time_step_study(
        self,
        patients: Mapping[str, np.ndarray],
        device: Mapping[str, Any],
        dts: list[float],
        settings: Mapping[str, Any],
    ) -> dict[str, Any]:
        """Endpoints at the time steps ``dts``, personalised once (see
        :func:`models.tavr.verification.time_step_study`)."""
        return verification.time_step_study(self, patients, device, dts, settings)

    def check(self, device: Mapping[str, Any], settings: Mapping[str, Any]) -> None:
        """Reject unknown settings or device keys, an unknown family or a size it lacks.

        Raises
        ------
        TAVRSettingsError, TAVRDeviceError
        """
        checked_settings(settings)
        family = _checked_family(device)
        size = device.get("size_mm")
        if size is not None and np.ndim(size) == 0 and int(size) not in family.sizes_mm:
            raise TAVRDeviceError(
                f"TAVR device key 'size_mm' is {size!r}; {family.name} sizes: {list(family.sizes_mm)}"
            )

    def output_dims(self, settings: Mapping[str, Any]) -> dict[str, int]:
        """``{"time": waveform_points}`` (0 when waveforms are not requested)."""
        return {"time": int(checked_settings(settings)["waveform_points"])}

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
        row = {k: row_values(s[k], n, k) for k in PER_ROW_SETTINGS}
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
        s = checked_settings(settings)
        # Per-patient physical parameters may come with the device (the engine routes UQ
        # samples there); they override the settings' values.
        s.update({k: device[k] for k in PER_ROW_SETTINGS if k in device})
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
        s = checked_settings(settings)
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
