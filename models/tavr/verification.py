"""Verification and validation helpers of the TAVR model.

Code verification: :func:`windkessel_exact` is the closed-form solution that the kernel's RK4
Windkessel (:func:`models.tavr.kernel.windkessel_prescribed_flow`) must reproduce, with the
observed order of accuracy (:func:`observed_order`) equal to 4. Calculation verification:
:func:`time_step_study` returns every endpoint at several time steps for the Grid Convergence
Index (:func:`grid_convergence_index`, Roache/Celik, Fs = 1.25). Validation:
:func:`matched_patients` builds, for one row of the reference EOA/gradient table, patients
whose annulus sits in that size's chart range; :func:`proportion_interval` gives the exact
(Clopper–Pearson) interval of a PPM rate.

This module does not import ``credibility`` (packages do not import each other); the
credibility package may reimplement or wrap these for the trial's evidence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

from .devices import FAMILIES, TAVRDeviceError
from .model import (
    _PER_ROW_SETTINGS,
    TAVRModel,
    _device_eoa,
    _row,
    _settings,
    personalise,
    run_device,
)

__all__ = [
    "ENDPOINTS",
    "gci_evidence",
    "grid_convergence_index",
    "matched_patients",
    "observed_order",
    "ppm_rates",
    "proportion_interval",
    "time_step_study",
    "validation_table",
    "windkessel_exact",
]

#: Published PPM rates (shared/reference/tavr.md): Bern TAVR registry (measured EOA) and
#: PARTNER 3 (SAPIEN 3, low risk, severe PPM at 30 days).
PPM_COMPARATORS: tuple[dict[str, Any], ...] = (
    {"source": "Bern TAVR registry", "family": "any", "class": "moderate", "rate": 0.27},
    {"source": "Bern TAVR registry", "family": "any", "class": "severe", "rate": 0.087},
    {"source": "PARTNER 3", "family": "balloon_expandable", "class": "severe", "rate": 0.046},
)

#: Scalar float endpoints of :class:`TAVRModel` (the quantities a verification study covers).
ENDPOINTS: tuple[str, ...] = tuple(
    k
    for k, var in TAVRModel.outputs.items()
    if var.dtype == "float64" and not var.dims and k not in ("eoa_cm2", "eoai_cm2_m2")
)


def windkessel_exact(
    t: np.ndarray,
    q_mean: float,
    q_amp: float,
    period: float,
    r: float,
    c: float,
    zc: float,
    pc0: float,
) -> np.ndarray:
    """Aortic pressure of the 3-element Windkessel under Q(t) = q_mean − q_amp·cos(2πt/T).

    C·dP_c/dt = Q − P_c/R, P_ao = P_c + Z_c·Q, P_c(0) = pc0 has the solution
    P_c = R·q_mean + a·cos ωt + b·sin ωt + (pc0 − R·q_mean − a)·exp(−t/RC) with
    a = −q_amp·R/(1 + (ωRC)²), b = ωRC·a.

    Parameters
    ----------
    t : ndarray
        Times (s).
    q_mean, q_amp : float
        Inflow mean and amplitude (mL/s).
    period : float
        T (s), ω = 2π/T.
    r, c, zc : float
        R (mmHg·s/mL), C (mL/mmHg), Z_c (mmHg·s/mL).
    pc0 : float
        Initial compliance pressure (mmHg).

    Returns
    -------
    ndarray
        P_ao(t) in mmHg.
    """
    t = np.asarray(t, dtype=np.float64)
    omega = 2.0 * np.pi / period
    tau = r * c
    a = -q_amp * r / (1.0 + (omega * tau) ** 2)
    b = omega * tau * a
    pc = r * q_mean + a * np.cos(omega * t) + b * np.sin(omega * t)
    pc += (pc0 - r * q_mean - a) * np.exp(-t / tau)
    return pc + zc * (q_mean - q_amp * np.cos(omega * t))


def observed_order(errors: Sequence[float], refinement: float = 2.0) -> np.ndarray:
    """Observed order of accuracy p = log(e_k / e_{k+1}) / log(r) between successive levels.

    Parameters
    ----------
    errors : sequence of float
        Error norms from the coarsest to the finest step.
    refinement : float
        Constant step ratio r = h_k / h_{k+1}.

    Returns
    -------
    ndarray, shape (len(errors) − 1,)
    """
    e = np.asarray(errors, dtype=np.float64)
    return np.log(e[:-1] / e[1:]) / np.log(refinement)


def grid_convergence_index(
    f_fine: np.ndarray,
    f_medium: np.ndarray,
    f_coarse: np.ndarray,
    refinement: float = 2.0,
    safety_factor: float = 1.25,
    order_bounds: tuple[float, float] | None = None,
) -> dict[str, np.ndarray]:
    """Grid Convergence Index of three solutions with a constant refinement ratio.

    p = |ln|ε32/ε21|| / ln r with ε21 = f2 − f1, ε32 = f3 − f2 (1 fine, 3 coarse);
    GCI_fine = Fs·|(f1 − f2)/f1| / (r^p − 1); Richardson extrapolate
    f_ext = (r^p·f1 − f2)/(r^p − 1). Oscillatory convergence (ε32/ε21 < 0) is flagged.

    Parameters
    ----------
    f_fine, f_medium, f_coarse : ndarray
        The quantity at steps h, r·h, r²·h (any shape, compared elementwise).
    refinement : float
        r > 1.
    safety_factor : float
        Fs (1.25 for three-level studies, Roache 1998).
    order_bounds : (float, float), optional
        Clip the observed order to this interval before computing GCI (an unreliable p near
        0 — nearly equal successive differences, i.e. round-off-level noise — otherwise makes
        r^p − 1 vanish and GCI explode). ``None`` keeps the textbook formula.

    Returns
    -------
    dict of str to ndarray
        ``order``, ``gci_fine`` (relative, fraction), ``extrapolated``, ``oscillatory``
        (bool) and ``asymptotic_ratio`` = GCI_coarse / (r^p·GCI_fine), ≈ 1 in the asymptotic
        range.

    References
    ----------
    Roache PJ. Verification and Validation in Computational Science and Engineering.
    Hermosa, 1998. Celik IB et al. Procedure for estimation and reporting of uncertainty due
    to discretization in CFD applications. J Fluids Eng 2008;130:078001.
    doi:10.1115/1.2960953
    """
    f1, f2, f3 = (np.asarray(f, dtype=np.float64) for f in (f_fine, f_medium, f_coarse))
    e21, e32 = f2 - f1, f3 - f2
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.abs(np.log(np.abs(e32 / e21))) / np.log(refinement)
        if order_bounds is not None:
            p = np.clip(p, *order_bounds)
        rp = refinement**p
        gci_fine = safety_factor * np.abs(e21 / f1) / (rp - 1.0)
        gci_coarse = safety_factor * np.abs(e32 / f2) / (rp - 1.0)
        extrapolated = (rp * f1 - f2) / (rp - 1.0)
        ratio = gci_coarse / (rp * gci_fine)
    return {
        "order": p,
        "gci_fine": gci_fine,
        "extrapolated": extrapolated,
        "oscillatory": (e32 * e21) < 0,
        "asymptotic_ratio": ratio,
    }


def time_step_study(
    patients: Mapping[str, np.ndarray],
    device: Mapping[str, Any],
    dts: Sequence[float],
    settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Endpoints of the same personalised patients at several time steps.

    The patients are personalised once (with the same settings), so the levels differ only by the
    discretisation of the device run; the steady-state tolerance is tightened to 1e-9 so the
    cycle iteration does not mask the time-step error.

    Parameters
    ----------
    patients : mapping of str to ndarray
        Model inputs, shape (n,) each.
    device : mapping
        Device arm (as for :class:`TAVRModel`).
    dts : sequence of float
        Time steps (s), e.g. ``[4e-3, 2e-3, 1e-3]``.
    settings : mapping, optional
        Other settings.

    Returns
    -------
    dict
        ``dt_s`` (levels,), ``endpoints`` {name: ndarray (levels, n)}, ``converged``
        (levels, n) bool, ``units`` {name: str}.
    """
    s = _settings({**(settings or {}), "steady_tol": 1e-9, "max_cycles": 400})
    s.update({k: device[k] for k in _PER_ROW_SETTINGS if k in device})
    dts = [float(d) for d in dts]
    n = np.asarray(patients["heart_rate_bpm"]).shape[0]
    eoa, loss, _, _ = _device_eoa(device, patients, n, s["out_of_chart"])
    fit_eoa = (
        eoa
        if s["personalise_valve"] == "device"
        else _row(s["reference_eoa_cm2"], n, "reference_eoa_cm2")
    )
    fit = personalise(patients, fit_eoa, {**s, "dt_s": min(dts)}, loss_coefficient=loss)
    levels: dict[str, list[np.ndarray]] = {
        k: [] for k in ENDPOINTS if k != "personalisation_residual_pct"
    }
    converged = []
    for dt in dts:
        out, conv = run_device(fit, patients, eoa, {**s, "dt_s": dt}, loss_coefficient=loss)
        for k in levels:
            levels[k].append(np.asarray(out[k], dtype=np.float64))
        converged.append(conv)
    return {
        "dt_s": np.asarray(dts),
        "endpoints": {k: np.vstack(v) for k, v in levels.items()},
        "converged": np.vstack(converged),
        "units": {k: TAVRModel.outputs[k].units for k in levels},
    }


def gci_evidence(
    study: Mapping[str, Any],
    safety_factor: float = 1.25,
    order_bounds: tuple[float, float] = (1.0, 4.0),
) -> dict[str, Any]:
    """Per-endpoint GCI summary of a three-level :func:`time_step_study` (JSON-serialisable).

    Parameters
    ----------
    study : mapping
        Output of :func:`time_step_study` with exactly three ``dt_s`` levels (coarse → fine,
        constant ratio).
    safety_factor : float
        Fs (1.25, Roache 1998).
    order_bounds : (float, float)
        Observed orders are clipped to [1, 4] (between first order and RK4's formal order;
        the valve events limit the full model to about 2) before GCI is computed.

    Returns
    -------
    dict
        ``dt_s``, ``refinement``, ``safety_factor`` and, per endpoint, ``units``, the median
        and maximum over patients of ``gci_fine`` (relative), the median observed ``order``,
        the fraction of patients with oscillatory convergence and the mean fine-level value.
        Endpoints identical at all levels (no discretisation error) get ``gci_fine`` 0.

    Raises
    ------
    ValueError
        If the study does not have three levels with a constant refinement ratio.
    """
    dts = np.asarray(study["dt_s"], dtype=np.float64)
    if dts.size != 3 or not np.isclose(dts[0] / dts[1], dts[1] / dts[2]):
        raise ValueError(
            f"gci_evidence needs three dt levels with a constant ratio; got dt_s={dts.tolist()}"
        )
    r = float(dts[0] / dts[1])
    out: dict[str, Any] = {
        "dt_s": dts.tolist(),
        "refinement": r,
        "safety_factor": safety_factor,
        "order_bounds": list(order_bounds),
        "method": "Roache 1998 / Celik et al. 2008 (doi:10.1115/1.2960953)",
        "endpoints": {},
    }
    for name, levels in study["endpoints"].items():
        coarse, medium, fine = levels
        exact = np.isclose(coarse, medium, rtol=1e-12) & np.isclose(medium, fine, rtol=1e-12)
        g = grid_convergence_index(fine, medium, coarse, r, safety_factor, order_bounds)
        raw = grid_convergence_index(fine, medium, coarse, r, safety_factor)["order"]
        gci = np.where(exact, 0.0, g["gci_fine"])
        order = raw[~exact & np.isfinite(raw)]
        out["endpoints"][name] = {
            "units": study["units"][name],
            "gci_fine_median": float(np.nanmedian(gci)),
            "gci_fine_max": float(np.nanmax(gci)),
            "order_median": float(np.median(order)) if order.size else None,
            "oscillatory_fraction": float(np.mean(g["oscillatory"] & ~exact)),
            "fine_mean": float(np.mean(fine)),
        }
    return out


def matched_patients(
    family: str,
    size_mm: int,
    n: int = 5,
    *,
    heart_rate_bpm: float = 70.0,
    svi_ml_m2: float = 39.0,
    lvef_pct: float = 55.0,
    sbp_mmhg: float = 130.0,
    dbp_mmhg: float = 70.0,
    bmi_kg_m2: float = 27.0,
) -> dict[str, np.ndarray]:
    """Typical patients whose annulus lies in one size's chart range (validation sets).

    The annulus sweeps the size's sizing range (area for balloon-expandable, perimeter for
    self-expanding; the other measure from a circular annulus, P = 2√(πA)). Haemodynamics are
    the reference-file cohort means (HR 70 bpm, SVI 39 mL/m², LVEF 55 %). Body size follows the
    annulus: **BSA = 2.0 m² × perimeter / 76.2 mm**, i.e. the reference mean BSA (2.0 m²) at
    the mean CT perimeter of women and men (71.8 and 80.6 mm → 76.2 mm), scaled linearly.
    This scaling is this model's assumption (the reference file gives no BSA–annulus
    relation); it sets the stroke volume SV = SVI·BSA that the gradient depends on.

    Parameters
    ----------
    family : {"balloon_expandable", "self_expanding"}
    size_mm : int
        A size of the family's table.
    n : int
        Patients spread over the central 60 % of the size's chart range.
    heart_rate_bpm, svi_ml_m2, lvef_pct, sbp_mmhg, dbp_mmhg, bmi_kg_m2 : float
        Haemodynamic covariates shared by the set.

    Returns
    -------
    dict of str to ndarray
        The model inputs, shape (n,) each.

    Raises
    ------
    TAVRDeviceError
        If the family or size is not in the reference table.
    """
    if family not in FAMILIES:
        raise TAVRDeviceError(
            f"device key 'family' is {family!r}; allowed values: {sorted(FAMILIES)}"
        )
    fam = FAMILIES[family]
    if size_mm not in fam.sizes_mm:
        raise TAVRDeviceError(
            f"device key 'size_mm' is {size_mm!r} for {family!r}; allowed: {list(fam.sizes_mm)}"
        )
    k = fam.sizes_mm.index(size_mm)
    lo, hi = fam.chart_low[k], fam.chart_high[k]
    x = lo + (hi - lo) * np.linspace(0.2, 0.8, n)
    if fam.sizing_variable == "annulus_area_mm2":
        area, perimeter = x, 2.0 * np.sqrt(np.pi * x)
    else:
        perimeter, area = x, x**2 / (4.0 * np.pi)
    bsa = 2.0 * perimeter / 76.2
    full = np.ones(n)
    return {
        "heart_rate_bpm": heart_rate_bpm * full,
        "bsa_m2": bsa,
        "bmi_kg_m2": bmi_kg_m2 * full,
        "lvef_pct": lvef_pct * full,
        "svi_ml_m2": svi_ml_m2 * full,
        "sbp_mmhg": sbp_mmhg * full,
        "dbp_mmhg": dbp_mmhg * full,
        "annulus_area_mm2": area,
        "annulus_perimeter_mm": perimeter,
    }


def validation_table(settings: Mapping[str, Any] | None = None, n: int = 5) -> list[dict[str, Any]]:
    """Predicted vs published mean gradient and EOA for every row of the reference table.

    Parameters
    ----------
    settings : mapping, optional
        Model settings.
    n : int
        Matched patients per row (:func:`matched_patients`).

    Returns
    -------
    list of dict
        One record per family × size: published ``eoa_cm2`` and ``mean_gradient_mmhg``, the
        matched set's mean predicted gradient, Gorlin and continuity EOA, stroke volume, and
        the differences (model − published).
    """
    model = TAVRModel()
    rows = []
    for fam in FAMILIES.values():
        for size, eoa, grad in zip(fam.sizes_mm, fam.eoa_cm2, fam.mean_gradient_mmhg, strict=True):
            p = matched_patients(fam.name, size, n)
            out = model.simulate(p, {"family": fam.name, "size_mm": size}, dict(settings or {}))
            g = float(np.mean(out["mean_gradient_mmhg"]))
            gorlin = float(np.mean(out["eoa_gorlin_cm2"]))
            rows.append(
                {
                    "family": fam.name,
                    "size_mm": size,
                    "published_mean_gradient_mmhg": grad,
                    "model_mean_gradient_mmhg": g,
                    "gradient_difference_mmhg": g - grad,
                    "published_eoa_cm2": eoa,
                    "model_eoa_gorlin_cm2": gorlin,
                    "gorlin_difference_cm2": gorlin - eoa,
                    "model_eoa_continuity_cm2": float(np.mean(out["eoa_continuity_cm2"])),
                    "model_stroke_volume_ml": float(np.mean(out["stroke_volume_ml"])),
                    "all_ok": bool((out["status"] == 0).all()),
                }
            )
    return rows


def ppm_rates(
    ppm_class: np.ndarray,
    status: np.ndarray,
    family: str,
    confidence: float = 0.95,
) -> list[dict[str, Any]]:
    """Moderate and severe PPM rates of one arm with exact intervals, beside the comparators.

    Parameters
    ----------
    ppm_class : ndarray of int8
        Model output ``ppm_class`` (0 none, 1 moderate, 2 severe).
    status : ndarray of int8
        Model status; only ``ok`` (0) rows count.
    family : str
        The arm's valve family (selects the family-specific comparators).
    confidence : float
        Level of the Clopper–Pearson intervals.

    Returns
    -------
    list of dict
        Per class: ``rate``, ``low``, ``high``, ``n`` and the published comparators
        (:data:`PPM_COMPARATORS`) for that class, each with ``inside`` (published value in the
        interval).
    """
    ok = np.asarray(status) == 0
    cls = np.asarray(ppm_class)[ok]
    out = []
    for label, code in (("moderate", 1), ("severe", 2)):
        rate, low, high = proportion_interval(
            float((cls == code).sum()), float(ok.sum()), confidence
        )
        comps = [
            {"source": c["source"], "rate": c["rate"], "inside": bool(low <= c["rate"] <= high)}
            for c in PPM_COMPARATORS
            if c["class"] == label and c["family"] in ("any", family)
        ]
        out.append(
            {
                "family": family,
                "class": label,
                "rate": rate,
                "low": low,
                "high": high,
                "n": int(ok.sum()),
                "comparators": comps,
            }
        )
    return out


def proportion_interval(
    successes: float, total: float, confidence: float = 0.95
) -> tuple[float, float, float]:
    """Rate and exact (Clopper–Pearson) interval of a binomial proportion.

    Parameters
    ----------
    successes, total : float
        Events and trials (weighted counts are rounded to integers).
    confidence : float
        Two-sided level.

    Returns
    -------
    (rate, low, high) : tuple of float

    References
    ----------
    Clopper CJ, Pearson ES. Biometrika 1934;26:404–413. doi:10.1093/biomet/26.4.404
    """
    k, m = int(round(successes)), int(round(total))
    alpha = 1.0 - confidence
    low = stats.beta.ppf(alpha / 2, k, m - k + 1) if k > 0 else 0.0
    high = stats.beta.ppf(1 - alpha / 2, k + 1, m - k) if k < m else 1.0
    return k / m, float(low), float(high)
