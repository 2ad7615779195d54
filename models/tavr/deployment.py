"""Deployment of a transcatheter valve in a patient's annulus, and the orifice it opens.

For every patient and device (vectorised):

1. **Frame at the annulus.** The annulus is a pliable ring: a round frame pushes it towards the
   circle of the same perimeter, area ``A_ring = P²/(4π)`` (CT perimeter ``P``; an elliptical
   annulus of the same area has a larger perimeter, so eccentricity counts). The frame and the
   ring meet between the frame's nominal area ``A_nom = π/4·size²`` and ``A_ring``:
   ``A_frame = A_nom − χ·max(A_nom − A_ring, 0)``, where ``χ`` is the annulus' share of the
   resistance. ``χ = 0.74`` reproduces the mean CT expansion of SAPIEN 3 at mid-frame (96.5 %
   of nominal area at a mean area oversizing of 6.3 %; Kazuno Y, et al. Eur Heart J
   Cardiovasc Imaging 2016;17(9):1054–1062, doi:10.1093/ehjci/jew032, with an annulus
   eccentricity of 0.2) and of the CoreValve frame (83 % of nominal area at 114 % perimeter
   oversizing; Rodríguez-Olivares R, et al. Rev Esp Cardiol 2016;69(4):392–400). Annular
   calcium stiffens the ring: ``χ·(AVC/AVC_ref)^γ`` (capped at 1), an assumption whose
   exponent ``γ`` is an uncertain input of the UQ.
2. **Leaflet level.** Intra-annular leaflets see the frame's expansion
   ``e = √(A_frame/A_nom)``; a supra-annular housing sees only a share ``τ`` of the deficit,
   ``e_leaf = 1 − τ·(1 − e)``, with ``τ`` scaled by the implant depth (deeper implants put the
   housing nearer the annulus), :mod:`models.tavr.devices`.
3. **Orifice.** The fully open effective orifice area is
   ``A_max = k_family·π/4·(size·e_leaf)²·exp(σ·z − σ²/2)``: ``k_family`` (effective orifice
   per unit nominal area of the design) and the between-patient random effect's SD ``σ``
   (``z`` standard normal per patient) are calibration parameters.
4. **Opening law.** The leaflets open with the flow: ``A(Q) = A_max·(1 − (1 − o_min)·
   exp(−Q/(u_open·A_max)))`` (used inside the kernel at every instant). A larger valve needs
   more flow to open fully (the scale is a velocity ``u_open`` times its area), so at the
   same stroke volume it opens less: the effective orifice grows less than the nominal area
   across sizes, and a valve's EOA rises with flow at low flow (flow-dependent EOA of
   bioprostheses: Kadem L, et al. JACC 2006;47:131–137; Blais C, et al. Am J Cardiol
   2001;88:45–52).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .devices import DeviceFamily

__all__ = ["deploy"]


def deploy(
    family: DeviceFamily,
    size_mm: np.ndarray,
    patients: Mapping[str, np.ndarray],
    effects: Mapping[str, np.ndarray],
    settings: Mapping[str, Any],
) -> dict[str, np.ndarray]:
    """Deployed geometry and fully open orifice of ``family`` in each patient.

    Parameters
    ----------
    family : DeviceFamily
        Design parameters (with any overrides of the arm).
    size_mm : ndarray of int, shape (n,)
        Labelled size per patient (chart or override).
    patients : mapping of str to ndarray
        ``annulus_area_mm2``, ``annulus_perimeter_mm``, ``av_calcium_agatston``.
    effects : mapping of str to ndarray
        Standard normal random effects ``implant_depth`` and ``orifice`` per patient.
    settings : mapping
        ``annulus_resistance_share`` (χ), ``calcium_exponent`` (γ), ``calcium_reference_au``,
        ``orifice_coefficient_<family>`` (k), ``eoa_random_effect_sd`` (σ); scalars or
        per-row arrays.

    Returns
    -------
    dict of str to ndarray
        ``oversizing_pct`` (nominal area over the circularised annulus, %),
        ``frame_expansion_pct`` (frame area at the annulus, % of nominal),
        ``leaflet_expansion_pct`` (leaflet-level area, % of nominal), ``implant_depth_mm``,
        ``eoa_max_cm2`` (fully open effective orifice area).
    """
    size = np.asarray(size_mm, dtype=np.float64)
    a_nom = 0.25 * np.pi * size**2
    perimeter = np.asarray(patients["annulus_perimeter_mm"], dtype=np.float64)
    a_ring = perimeter**2 / (4.0 * np.pi)
    calcium = np.maximum(np.asarray(patients["av_calcium_agatston"], dtype=np.float64), 1.0)
    chi = np.minimum(
        np.asarray(settings["annulus_resistance_share"], dtype=np.float64)
        * (calcium / float(settings["calcium_reference_au"]))
        ** np.asarray(settings["calcium_exponent"], dtype=np.float64),
        1.0,
    )
    a_frame = a_nom - chi * np.maximum(a_nom - a_ring, 0.0)
    expansion = np.sqrt(a_frame / a_nom)
    mean_depth, sd_depth = family.implant_depth_mm
    depth = np.maximum(mean_depth + sd_depth * effects["implant_depth"], 0.0)
    if family.leaflet_position == "intra":
        tau = np.full(size.shape, family.leaflet_transmission)
    else:
        tau = np.minimum(family.leaflet_transmission * depth / family.reference_depth_mm, 1.0)
    leaflet = 1.0 - tau * (1.0 - expansion)
    k = np.asarray(settings[f"orifice_coefficient_{family.name}"], dtype=np.float64)
    sigma = np.asarray(settings["eoa_random_effect_sd"], dtype=np.float64)
    eoa_max = (
        k * 0.25 * np.pi * (size * leaflet) ** 2 * 1e-2  # mm² → cm²
        * np.exp(sigma * effects["orifice"] - 0.5 * sigma**2)
    )  # fmt: skip
    return {
        "oversizing_pct": 100.0 * (a_nom / a_ring - 1.0),
        "frame_expansion_pct": 100.0 * expansion**2,
        "leaflet_expansion_pct": 100.0 * leaflet**2,
        "implant_depth_mm": depth,
        "eoa_max_cm2": eoa_max,
    }
