"""Virtual echocardiography: what a core lab or site echo *measures* of the model's true state.

Trials report echo measurements, not true haemodynamics, so the endpoints compared with them
are virtual measurements with published measurement error:

* **Doppler (CW) jet.** The traced jet velocity envelope of one examination carries a
  multiplicative error ``ε_j``: measured VTI = VTI·(1 + ε_j), mean gradient =
  4·mean(v²)·(1 + ε_j)² (simplified Bernoulli, as echo machines compute it), peak velocity =
  v_peak·(1 + ε_j). CV of ``ε_j`` 10.8 %: the variance components of repeated AS
  examinations, probe re-application 9.4 % and beat-to-beat 9.3 % averaged over three beats
  (Cecaro F, What are the components that contribute to variability in echocardiographic
  measurements in aortic stenosis? Thesis, Univ. Bologna 2013, doi:10.6092/unibo/amsdottorato/5877).
* **LVOT (PW) velocity.** LVOT VTI = SV/A_LVOT·(1 + ε_l), CV 12.0 % (same study: 10.7 % and
  9.4 %/√3), correlated with the jet error, r = 0.39 (the same reader traces both; Sutaria N,
  Dhutia N, et al., Doppler assessment of aortic stenosis: reading the peak velocity is
  superior to velocity time integral, Heart, BCS/BSE abstract).
* **LVOT diameter.** A 2D TTE diameter taken as a circle underestimates the elliptical LVOT
  area: measured area = 0.83·(1 + ε_D)² × true (2D TTE underestimated LVOT area by 17 % against
  CT; Gaspar T, et al. J Am Soc Echocardiogr 2012;25(7):749–757,
  doi:10.1016/j.echo.2012.05.001); ``ε_D`` has SD 4.3 % (SD of the TTE − TEE diameter
  difference, 0.09 cm at 2.11 cm; Shiran A, et al. Eur J Echocardiogr 2009;10:319–324,
  doi:10.1093/ejechocard/jen254).
* **Continuity EOA** = measured LVOT area × LVOT VTI / jet VTI, and the indexed EOA; VARC-3
  prosthesis–patient mismatch is classified on the *measured* indexed EOA, as in the trials.

The same systematic LVOT bias applies to the cohort's pre-procedure stroke volume index (an
echo measurement too): the model's true stroke volume is SVI·BSA / 0.83
(:func:`true_stroke_volume`).

Errors are per patient (drawn from the patient's seed) and shared by the arms: both arms of a
patient are read by the same virtual reader (common random numbers).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["STREAMS", "measure", "ppm_class", "true_stroke_volume"]

#: Random-effect streams this module draws (standard normals per patient).
STREAMS = ("echo.lvot_diameter", "echo.jet", "echo.lvot_vti")

# VARC-3 PPM thresholds on indexed EOA (cm²/m²): moderate <= 0.85, severe <= 0.65; with
# BMI >= 30 kg/m²: moderate <= 0.70, severe <= 0.55 (VARC-3 Writing Committee, Eur Heart J
# 2021;42:1825-1857, doi:10.1093/eurheartj/ehaa799).
_PPM = {"moderate": (0.85, 0.70), "severe": (0.65, 0.55), "obese_bmi": 30.0}


def ppm_class(eoai_cm2_m2: np.ndarray, bmi_kg_m2: np.ndarray) -> np.ndarray:
    """VARC-3 prosthesis–patient mismatch class: 0 none, 1 moderate, 2 severe (int8)."""
    obese = np.asarray(bmi_kg_m2) >= _PPM["obese_bmi"]
    moderate = np.where(obese, _PPM["moderate"][1], _PPM["moderate"][0])
    severe = np.where(obese, _PPM["severe"][1], _PPM["severe"][0])
    eoai = np.asarray(eoai_cm2_m2)
    return np.where(eoai <= severe, 2, np.where(eoai <= moderate, 1, 0)).astype(np.int8)


def true_stroke_volume(
    svi_ml_m2: np.ndarray, bsa_m2: np.ndarray, settings: Mapping[str, Any]
) -> np.ndarray:
    """True stroke volume (mL) behind an echo-measured stroke volume index."""
    return np.asarray(svi_ml_m2) * np.asarray(bsa_m2) / float(settings["lvot_area_ratio"])


def measure(
    true: Mapping[str, np.ndarray],
    patients: Mapping[str, np.ndarray],
    effects: Mapping[str, np.ndarray],
    settings: Mapping[str, Any],
) -> dict[str, np.ndarray]:
    """The virtual echo of each patient.

    Parameters
    ----------
    true : mapping of str to ndarray
        ``stroke_volume_ml``, ``vti_cm`` (jet velocity-time integral), ``mean_v2`` (mean of
        v² over ejection, (m/s)²) and ``peak_velocity_m_s`` of the true state.
    patients : mapping of str to ndarray
        ``bsa_m2``, ``bmi_kg_m2``.
    effects : mapping of str to ndarray
        Standard normals of :data:`STREAMS`.
    settings : mapping
        ``lvot_area_ratio``, ``lvot_diameter_cv``, ``jet_vti_cv``, ``lvot_vti_cv``,
        ``vti_error_correlation``, ``doppler_coefficient`` (4 mmHg per (m/s)²).

    Returns
    -------
    dict of str to ndarray
        ``mean_gradient_mmhg``, ``peak_gradient_mmhg``, ``peak_velocity_m_s``, ``eoa_cm2``,
        ``eoai_cm2_m2`` (measured) and ``stroke_volume_echo_ml``; the PPM class is derived
        from the measured indexed EOA by :meth:`TAVRModel.derive`.
    """
    r = float(settings["vti_error_correlation"])
    z_jet = effects["echo.jet"]
    z_lvot = r * z_jet + np.sqrt(1.0 - r * r) * effects["echo.lvot_vti"]
    jet = np.maximum(1.0 + float(settings["jet_vti_cv"]) * z_jet, 0.2)
    lvot_vti = np.maximum(1.0 + float(settings["lvot_vti_cv"]) * z_lvot, 0.2)
    diameter = np.maximum(
        1.0 + float(settings["lvot_diameter_cv"]) * effects["echo.lvot_diameter"], 0.5
    )
    sv_echo = true["stroke_volume_ml"] * float(settings["lvot_area_ratio"]) * diameter**2 * lvot_vti
    c = float(settings["doppler_coefficient"])
    with np.errstate(divide="ignore", invalid="ignore"):
        eoa = sv_echo / (true["vti_cm"] * jet)
    eoai = eoa / np.asarray(patients["bsa_m2"])
    v_peak = true["peak_velocity_m_s"] * jet
    return {
        "mean_gradient_mmhg": c * true["mean_v2"] * jet**2,
        "peak_gradient_mmhg": c * v_peak**2,
        "peak_velocity_m_s": v_peak,
        "eoa_cm2": eoa,
        "eoai_cm2_m2": eoai,
        "stroke_volume_echo_ml": sv_echo,
    }
