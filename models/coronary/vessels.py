"""Hyperaemic physiology of a patient's three coronary arteries, and stent deployment.

Each of the three major arteries (0 LAD, 1 LCx, 2 RCA) is one series circuit at maximal
hyperaemia (see :mod:`models.coronary.stenosis`)::

    P_a ── R_d ── lesion 1 ── lesion 2 ── … ── R_μ ── P_v

Lesion slots of the same artery are in series, proximal to distal in slot order; every
element carries the same flow. The microvascular resistance of an artery scales with the
size of the bed it feeds: ``R_μ = s · IMR · (D_prox / D_ref)^(−7/3)``, ``D_prox`` the reference
diameter at the artery's most proximal lesion, ``s`` the (calibrated) resistance per unit of
the patient's index of microcirculatory resistance at ``D_ref`` = 3 mm, and 7/3 the
flow–diameter exponent of coronary trees (Huo Y, Kassab GS. Intraspecific scaling laws of
vascular trees. J R Soc Interface 2012;9:190-200: Q ∝ D^(7/3)). Diffuse atherosclerosis
outside the focal lesions is a linear resistance ``R_d`` lumped proximal to them, drawn so
that an artery without focal lesions has ``FFR = 1 − x``, ``x`` log-normal with mean 0.11 and
SD 0.08 (FFR 0.89 ± 0.08 in angiographically normal arteries of patients with coronary
disease; De Bruyne B, et al. Circulation 2001;104:2401-2406).

The FFR of a lesion is what a pressure wire just distal to it reads, with every lesion of the
artery in place: ``FFR = (P_d − P_v) / (P_a − P_v)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .stenosis import lesion_coefficients, solve_flow

__all__ = ["N_VESSELS", "VESSELS", "deploy_stents", "vessel_physiology"]

#: Major epicardial arteries, in the order of the cohort's vessel codes.
VESSELS = ("LAD", "LCX", "RCA")
N_VESSELS = len(VESSELS)


def _row(value: Any) -> np.ndarray:
    """A scalar, or a per-patient row as a column (n, 1) that broadcasts over slots."""
    arr = np.asarray(value, dtype=np.float64)
    return arr[:, None] if arr.ndim == 1 else arr


def vessel_physiology(
    pa_mmhg: np.ndarray,
    pv_mmhg: np.ndarray,
    r_micro_ref: np.ndarray,
    vessel: np.ndarray,
    present: np.ndarray,
    d0_mm: np.ndarray,
    mld_mm: np.ndarray,
    length_mm: np.ndarray,
    diffuse_loss: np.ndarray,
    settings: Mapping[str, Any],
) -> dict[str, np.ndarray]:
    """FFR of every lesion and artery at maximal hyperaemia.

    Parameters
    ----------
    pa_mmhg, pv_mmhg : ndarray, shape (n,)
        Mean aortic and venous (right atrial) pressure at hyperaemia (mmHg).
    r_micro_ref : ndarray, shape (n,)
        Microvascular resistance of a bed fed by a ``resistance_reference_diameter_mm``
        artery (mmHg·s/mL).
    vessel : ndarray of int, shape (n, k)
        Artery of each lesion slot (0 LAD, 1 LCx, 2 RCA).
    present : ndarray of bool, shape (n, k)
        Slots holding a lesion.
    d0_mm, mld_mm, length_mm : ndarray, shape (n, k)
        Reference diameter, minimal lumen diameter and length of each lesion (mm).
    diffuse_loss : ndarray, shape (n, 3)
        ``x`` of each artery: the FFR of the artery without focal lesions is ``1 − x``.
    settings : mapping
        ``blood_viscosity_mpa_s``, ``blood_density_kg_m3``, ``expansion_loss_coefficient``,
        ``resistance_reference_diameter_mm``, ``flow_diameter_exponent``, ``solver_tol``,
        ``solver_max_iter``.

    Returns
    -------
    dict
        ``ffr`` and ``flow_ml_s`` (n, k) per lesion (NaN for empty slots); ``vessel_ffr``,
        ``vessel_flow_ml_s`` (n, 3) and ``vessel_present`` (n, 3) per artery; ``converged``
        (n,) bool.
    """
    n, k = present.shape
    a, b = lesion_coefficients(
        d0_mm,
        mld_mm,
        length_mm,
        viscosity_mpa_s=_row(settings["blood_viscosity_mpa_s"]),
        density_kg_m3=_row(settings["blood_density_kg_m3"]),
        k_t=_row(settings["expansion_loss_coefficient"]),
    )
    member = present[:, None, :] & (vessel[:, None, :] == np.arange(N_VESSELS)[None, :, None])
    a_v = np.where(member, a[:, None, :], 0.0)  # (n, 3, k)
    b_v = np.where(member, b[:, None, :], 0.0)
    has = member.any(axis=2)  # (n, 3)
    first = np.argmax(member, axis=2)  # most proximal lesion slot of each artery
    d_prox = np.take_along_axis(
        np.broadcast_to(d0_mm[:, None, :], member.shape), first[..., None], 2
    )
    d_prox = np.where(has, d_prox[..., 0], float(settings["resistance_reference_diameter_mm"]))
    scale = (d_prox / float(settings["resistance_reference_diameter_mm"])) ** -float(
        settings["flow_diameter_exponent"]
    )
    r_mu = np.asarray(r_micro_ref, dtype=np.float64)[:, None] * scale
    x = np.asarray(diffuse_loss, dtype=np.float64)
    r_d = r_mu * x / (1.0 - x)
    dp = (np.asarray(pa_mmhg) - np.asarray(pv_mmhg))[:, None] * np.ones((1, N_VESSELS))
    q, converged = solve_flow(
        dp,
        r_d + r_mu,
        a_v,
        b_v,
        tol=float(settings["solver_tol"]),
        max_iter=int(settings["solver_max_iter"]),
    )
    drop = np.cumsum(a_v * q[..., None] + b_v * (q * np.abs(q))[..., None], axis=2)
    p_distal = np.asarray(pa_mmhg)[:, None, None] - (r_d * q)[..., None] - drop
    ffr_v = (p_distal - np.asarray(pv_mmhg)[:, None, None]) / dp[..., None]  # (n, 3, k)
    # each slot belongs to one artery: pick its value (no floating-point reduction)
    ffr = np.where(member, ffr_v, 0.0).max(axis=1)
    flow = np.where(member, q[..., None], 0.0).max(axis=1)
    return {
        "ffr": np.where(present, ffr, np.nan),
        "flow_ml_s": np.where(present, flow, np.nan),
        "vessel_ffr": np.where(has, r_mu * q / dp, np.nan),
        "vessel_flow_ml_s": np.where(has, q, np.nan),
        "vessel_present": has,
        "converged": (converged | ~has).all(axis=1),
    }


def deploy_stents(
    d0_mm: np.ndarray,
    d0_read_mm: np.ndarray,
    length_mm: np.ndarray,
    expansion_z: np.ndarray,
    settings: Mapping[str, Any],
) -> dict[str, np.ndarray]:
    """Lumen of a stented lesion: the stent's achieved diameter over the stented length.

    The stent is sized to the angiographic (QCA) reference diameter times
    ``stent_to_reference_ratio``, rounded to the 0.25 mm steps of marketed drug-eluting
    stents (2.25–4.0 mm). It reaches ``e`` of its predicted (compliance-chart) minimal stent
    area, ``e`` per lesion normal with mean ``stent_expansion_mean`` (0.77: sirolimus- and
    paclitaxel-eluting stents reached 75–79 % of the predicted minimal stent area on IVUS,
    Sangiorgi G, Romagnoli E, Colombo A, review of stent underexpansion) and SD
    ``stent_expansion_sd``, within 0.5–1.1. The achieved minimal lumen diameter is
    ``D_stent · sqrt(e)`` (no wider than the true reference) over the lesion length plus
    ``stent_margin_mm``.

    Returns
    -------
    dict
        ``mld_mm``, ``length_mm`` of the stented segment and ``stent_diameter_mm``, shape
        (n, k).
    """
    nominal = np.clip(
        np.round(_row(settings["stent_to_reference_ratio"]) * d0_read_mm / 0.25) * 0.25,
        2.25,
        4.0,
    )
    expansion = np.clip(
        _row(settings["stent_expansion_mean"]) + _row(settings["stent_expansion_sd"]) * expansion_z,
        0.5,
        1.1,
    )
    return {
        "mld_mm": np.minimum(nominal * np.sqrt(expansion), d0_mm),
        "length_mm": length_mm + float(settings["stent_margin_mm"]),
        "stent_diameter_mm": nominal,
    }
