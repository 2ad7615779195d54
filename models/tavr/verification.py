"""The TAVR model's own verification: the coupled kernel's order and its time-step study.

* :func:`self_convergence` — code verification of the coupled LV – valve – Windkessel kernel
  itself, valve events included: the same cycles integrated with 64 … 4096 steps per cycle,
  the observed order of accuracy of the end state and of the cycle integrals from successive
  differences (Richardson), against the formal order 2 (kernel docstring).
* :func:`windkessel_exact` — the closed-form Windkessel under a sinusoidal inflow, a unit check
  of the RK4 right-hand side (order 4, no events).
* :func:`time_step_study` — calculation verification: the trial's endpoints at several time
  steps for the Grid Convergence Index (computed by ``credibility.verification``).

This module does not import ``credibility`` (packages do not import each other) and holds no
copy of its statistics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import echo, kernel
from .physiology import (
    PER_ROW_SETTINGS,
    checked_settings,
    personalise,
    random_effects,
    run_device,
    valve_table,
)

__all__ = [
    "observed_order",
    "self_convergence",
    "time_step_study",
    "windkessel_exact",
]

#: Endpoints of a time-step study (float, scalar per patient, changed by the step).
STUDY_ENDPOINTS = (
    "mean_gradient_mmhg",
    "peak_gradient_mmhg",
    "peak_velocity_m_s",
    "eoa_cm2",
    "mean_gradient_true_mmhg",
    "eoa_true_cm2",
    "net_mean_gradient_mmhg",
    "stroke_volume_ml",
    "ejection_time_s",
    "lv_peak_pressure_mmhg",
    "aortic_systolic_mmhg",
    "aortic_diastolic_mmhg",
    "lv_stroke_work_j",
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
    """Observed order p = log(e_k / e_{k+1}) / log(r) between successive levels."""
    e = np.asarray(errors, dtype=np.float64)
    return np.log(e[:-1] / e[1:]) / np.log(refinement)


#: A typical adult patient of the reference ranges (shared/reference/tavr.md) with a 23 mm
#: balloon-expandable-like orifice, for the self-convergence study.
_VERIFICATION_CASE = {
    "period_s": 60.0 / 70.0,
    "t_max": 0.33,
    "e_max": 2.3,
    "e_min": 0.05,
    "v_0": 10.0,
    "p_la": 10.0,
    "r_mv": 0.005,
    "z_c": 0.09,
    "r_p": 0.95,
    "c_p": 1.5,
    "eoa_max": 1.7,
    "open_min": 0.3,
    "q_open": 170.0,
    "aorta_diameter_mm": 32.5,
    "rho": 1050.0,
    "state": (130.0, 0.0, 80.0),
}
_QUANTITIES = ("V_end", "Pc_end", "stroke_volume", "vti", "int_v2", "ejection_time")


def _fixed_cycles(steps_per_cycle: int, cycles: int, case: Mapping[str, Any]) -> dict[str, float]:
    """The kernel run for exactly ``cycles`` cycles (no projection, no stopping test)."""
    one = np.ones(1)
    valve = np.array(
        [
            [
                case["eoa_max"],
                case["open_min"],
                case["q_open"],
                0.25 * np.pi * (case["aorta_diameter_mm"] * 0.1) ** 2,
                case["rho"],
            ]
        ]
    )
    state = np.array([case["state"]], dtype=np.float64)
    results = np.zeros((1, len(kernel.RES)))
    kernel.simulate_batch(
        case["period_s"] * one,
        np.array([steps_per_cycle], dtype=np.int64),
        case["t_max"] * one,
        case["e_max"] * one,
        case["e_min"] * one,
        case["v_0"] * one,
        case["p_la"] * one,
        case["r_mv"] * one,
        case["z_c"] * one,
        case["r_p"] * one,
        case["c_p"] * one,
        valve,
        state,
        False,
        np.zeros((1, 5)),
        0.1,
        int(cycles),
        0.0,
        0.0,
        False,
        np.zeros((1, 3, 0)),
        results,
    )
    res = kernel.RES
    return {
        "V_end": float(state[0, 0]),
        "Pc_end": float(state[0, 2]),
        "stroke_volume": float(results[0, res["stroke_volume"]]),
        "vti": float(results[0, res["vti"]]),
        "int_v2": float(results[0, res["int_v2"]]),
        "ejection_time": float(results[0, res["ejection_time"]]),
    }


def self_convergence(
    steps: Sequence[int] = (64, 128, 256, 512, 1024),
    reference_steps: int = 65536,
    cycles: int = 3,
    case: Mapping[str, Any] | None = None,
    formal_order: float = 2.0,
) -> dict[str, Any]:
    """Observed order of accuracy of the coupled kernel, valve events included.

    The same patient (``case``: a typical adult with a flow-dependent 1.7 cm² orifice) is
    integrated from the same state for exactly ``cycles`` cycles with each number of steps
    per cycle (h halves from level to level), without the periodic projection or stopping
    test, so the levels differ by the time step only. No closed-form solution exists with
    the valve events, so the error of each level is taken against a far finer solution
    (``reference_steps`` per cycle; self-convergence, Roache 1998 ch. 5; Oberkampf & Roy
    2010 §5.4) for the end state (V, P_c) and the last cycle's stroke volume, jet VTI,
    ∫v² dt and ejection time. Where an event falls inside a step changes from level to
    level, so the error constant scatters and pairwise orders are noisy; the observed order
    of each quantity is therefore the least-squares slope of log(error) against log(h) over
    all levels, and the model's observed order the median over the quantities.

    Parameters
    ----------
    steps : sequence of int
        Steps per cycle of the levels, each twice the previous.
    reference_steps : int
        Steps per cycle of the reference solution.
    cycles : int
        Cycles integrated.
    case : mapping, optional
        Parameters of the patient (default :data:`_VERIFICATION_CASE`).
    formal_order : float
        The order expected of the scheme with its events.

    Returns
    -------
    dict
        ``formal_order``, ``steps_per_cycle``, ``relative_error`` {quantity: list per level},
        ``observed_order`` {quantity: slope}, ``pairwise_order`` {quantity: list},
        ``observed_order_median``, ``order_error_abs`` (its distance to the formal order)
        and ``finest_error_rel`` (largest relative error of the finest level).
    """
    case = dict(_VERIFICATION_CASE if case is None else case)
    steps = [int(s) for s in steps]
    reference = _fixed_cycles(int(reference_steps), cycles, case)
    runs = [_fixed_cycles(n, cycles, case) for n in steps]
    errors: dict[str, list[float]] = {}
    slopes: dict[str, float] = {}
    pairwise: dict[str, list[float]] = {}
    for q in _QUANTITIES:
        e = np.array([abs(r[q] - reference[q]) / abs(reference[q]) for r in runs])
        errors[q] = [float(x) for x in e]
        slopes[q] = float(-np.polyfit(np.log(steps), np.log(np.maximum(e, 1e-300)), 1)[0])
        pairwise[q] = [float(x) for x in observed_order(e)]
    p = float(np.median(list(slopes.values())))
    return {
        "test": "coupled LV-valve-Windkessel kernel with valve events, self-convergence "
        f"over {cycles} cycles against {reference_steps} steps per cycle",
        "formal_order": formal_order,
        "steps_per_cycle": steps,
        "relative_error": errors,
        "observed_order": slopes,
        "pairwise_order": pairwise,
        "observed_order_median": p,
        "order_error_abs": abs(p - formal_order),
        "finest_error_rel": max(e[-1] for e in errors.values()),
    }


def time_step_study(
    model: Any,
    patients: Mapping[str, np.ndarray],
    device: Mapping[str, Any],
    dts: Sequence[float],
    settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Endpoints of the same patients and deployed valves at several time steps.

    The patients are personalised once and the valve deployed once, so the levels differ
    only by the discretisation of the device run; the steady-state tolerance is tightened to
    1e-9 so the cycle iteration does not mask the time-step error. The virtual echo is
    applied with the same per-patient reading errors at every level.

    Parameters
    ----------
    model : TAVRModel
    patients : mapping of str to ndarray
        Model inputs, shape (n,) each.
    device : mapping
        Device arm (as for :class:`~models.tavr.model.TAVRModel`).
    dts : sequence of float
        Time steps (s), coarse to fine, e.g. ``[4e-3, 2e-3, 1e-3]``.
    settings : mapping, optional

    Returns
    -------
    dict
        ``dt_s`` (levels,), ``endpoints`` {name: ndarray (levels, n)}, ``converged``
        (levels, n) bool, ``units`` {name: str}.
    """

    s = checked_settings({**(settings or {}), "steady_tol": 1e-9, "max_cycles": 400})
    s.update({k: device[k] for k in PER_ROW_SETTINGS if k in device})
    dts = [float(d) for d in dts]
    effects = random_effects(patients["patient_seed"])
    geometry, _, _ = model.deployed_valves(patients, device, s, effects)
    fit = personalise(patients, {**s, "dt_s": min(dts)})
    valve = valve_table(np.nan_to_num(geometry["eoa_max_cm2"], nan=1.0), s)
    levels: dict[str, list[np.ndarray]] = {k: [] for k in STUDY_ENDPOINTS}
    converged = []
    for dt in dts:
        out, conv = run_device(fit, valve, {**s, "dt_s": dt})
        out.update(echo.measure(out, patients, effects, s))
        for k in levels:
            levels[k].append(np.asarray(out[k], dtype=np.float64))
        converged.append(conv)
    return {
        "dt_s": np.asarray(dts),
        "endpoints": {k: np.vstack(v) for k, v in levels.items()},
        "converged": np.vstack(converged),
        "units": {k: model.outputs[k].units for k in levels},
    }
