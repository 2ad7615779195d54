"""Compiled (numba) kernel of the LV – aortic valve – Windkessel model.

Equations (units: mL, mL/s, mmHg, s, cm²)::

    E(t)    = (E_max − E_min) · E_n(t mod T) + E_min          double-Hill elastance
    P_lv    = E(t) · (V − V_0)
    Q_mv    = max(P_la − P_lv, 0) / R_mv                       mitral inflow (ideal diode)
    P_ao    = P_c + Z_c · Q
    A(Q)    = A_max · o(Q),  o(Q) = 1 − (1 − o_min) · exp(−Q / Q_open)   (Q > 0; o_min at Q ≤ 0)
    L(A) dQ/dt = P_lv − P_ao − K(A) · Q·|Q|                    Garcia valve (open)
    dQ/dt   = 0   while Q ≤ 0 and the right-hand side is < 0   closed valve (no backflow)
    dV/dt   = Q_mv − Q
    C dP_c/dt = Q − P_c / R                                    3-element Windkessel

with L = 2πρ/√ELCo, K = ρ/(2 ELCo²), ELCo = A·A_a/(A_a − A) (Garcia et al. 2005, converted to
mmHg·s²/mL and mmHg·s²/mL²). ``A(Q)`` is the valve's effective orifice area: the leaflets
open further as the flow rises (quasi-steady opening law; ``o_min = 1`` gives a rigid
orifice). The jet velocity is v = Q / A(Q) (cm/s).

Integration: classical fixed-step RK4 with ``T/dt`` rounded to an integer number of steps per
cycle, so the double-Hill elastance is tabulated once per patient at the 2·n + 1 stage times
of a cycle. When a step ends with Q < 0 the valve is closed and Q is set to 0 (projection
onto the constraint Q ≥ 0); the closure instant is located from Q and dQ/dt at the step start.

Order of accuracy. Between valve events the right-hand side is smooth and RK4 is 4th order.
At the events it is not: the aortic valve's dQ/dt jumps at closure, and the mitral inflow and
the valve opening are continuous with a kink. A step that contains a kink has a local error
O(h²); a step that contains the closure jump has a local error O(h) in Q, which the projection
Q = 0 removes (the exact Q is 0 there too), leaving O(h²) in V and P_c, whose right-hand sides
are continuous. A cycle has a fixed number of events, independent of h, so the global error
is O(h²): **formal order 2** for the coupled model with its events. The event times (opening
by interpolation of the driving pressure, closure from Q and dQ/dt) are O(h²) as well.
:func:`models.tavr.verification.self_convergence` measures it on this kernel.

Besides the three physical states the kernel integrates, with the same RK4 weights, the
cycle integrals ∫Q_mv, ∫Q, ∫P_c/R, ∫P_ao, ∫P_lv·(Q − Q_mv), ∫v dt (jet VTI), ∫v² dt and the
net pressure drop ∫K·Q² dt. The volume identity V_end − V_start = ∫Q_mv − ∫Q is linear in
the states and therefore exact (to round-off) for any Runge–Kutta scheme — the
volume-conservation test checks it.

References
----------
Stergiopulos N, Meister JJ, Westerhof N. Determinants of stroke volume and systolic and
diastolic aortic pressure. Am J Physiol 1996;270:H2050–H2059.
doi:10.1152/ajpheart.1996.270.6.H2050
Garcia D, Pibarot P, Durand LG. Analytical modeling of the instantaneous pressure gradient
across the aortic valve. J Biomech 2005;38:1303–1311. doi:10.1016/j.jbiomech.2004.06.018
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "RES",
    "VALVE",
    "elastance_normalised",
    "simulate_batch",
    "windkessel_prescribed_flow",
]

MMHG_PA = 133.322  # Pa per mmHg

#: Column index of each per-cycle result written by :func:`simulate_batch`.
RES: dict[str, int] = {
    "stroke_volume": 0,  # ∫Q dt over the last cycle (mL)
    "edv": 1,  # max V over the cycle (mL)
    "esv": 2,  # min V over the cycle (mL)
    "lv_peak": 3,  # max P_lv (mmHg)
    "sbp": 4,  # max P_ao (mmHg)
    "dbp": 5,  # min P_ao (mmHg)
    "map": 6,  # ∫P_ao dt / T (mmHg)
    "stroke_work": 7,  # ∫P_lv (Q − Q_mv) dt (mmHg·mL)
    "ejection_time": 8,  # time with the aortic valve open (s)
    "vti": 9,  # ∫v dt, jet velocity-time integral (cm)
    "int_v2": 10,  # ∫v² dt ((cm/s)²·s)
    "v_peak": 11,  # max v (cm/s)
    "int_net": 12,  # ∫K(A)·Q² dt, net (catheter) pressure drop integral (mmHg·s)
    "q_peak": 13,  # max Q (mL/s)
    "cycles": 14,  # cycles run in the last phase
    "converged": 15,  # 1.0 if the stopping criterion was met
    "inflow": 16,  # ∫Q_mv dt (mL)
    "outflow": 17,  # ∫P_c/R dt (mL)
    "v_start": 18,  # V at the start of the last cycle (mL)
    "v_end": 19,  # V at its end (mL)
    "pc_start": 20,  # P_c at the start of the last cycle (mmHg)
    "pc_end": 21,  # P_c at its end (mmHg)
}
_NRES = len(RES)

#: Column index of the per-patient valve description handed to :func:`simulate_batch`.
VALVE: dict[str, int] = {
    "eoa_max": 0,  # fully open effective orifice area A_max (cm²)
    "open_min": 1,  # o_min, opening fraction at zero flow (1: rigid orifice)
    "q_open": 2,  # Q_open, flow scale of the opening law (mL/s)
    "aorta_area": 3,  # ascending-aorta cross-section A_a (cm²)
    "rho": 4,  # blood density (kg/m³)
}

# Bounds on the compliance during personalisation (mL/mmHg): about 0.1x–3x the reference
# 1.4–1.8 mL/mmHg; beyond the upper one Z_c is lowered instead.
_C_MIN, _C_MAX = 0.2, 5.0
# Periodic projection of the Windkessel node (see simulate_batch): the full jump multiplies
# the cycle's change of P_c by a/(1 − a), a = exp(−T/RC), i.e. by 4 at RC = 4.5 T. It assumes
# the valve flow does not depend on P_c; a weak ventricle (low E_max) ejects less against a
# higher pressure, so with a slow Windkessel the full jump overshoots and the cycles
# alternate (period-2 oscillation that never meets steady_tol / the personalisation
# targets). The multiplier is therefore capped at GAIN_CAP, and during personalisation,
# where the parameters move as well, scaled by ADAPT_RELAX first.
GAIN_CAP = 2.0
ADAPT_RELAX = 0.3

# Double-Hill constants (Stergiopulos et al. 1996, as in shared/reference/tavr.md).
_HILL_SCALE = 1.55
_A1, _N1 = 0.7, 1.9
_A2, _N2 = 1.17, 21.9


@njit(cache=True)
def elastance_normalised(t_n: float) -> float:
    """Normalised double-Hill elastance E_n(t_n), t_n = t / T_max (Stergiopulos 1996)."""
    if t_n <= 0.0:
        return 0.0
    h1 = (t_n / _A1) ** _N1
    h2 = (t_n / _A2) ** _N2
    return _HILL_SCALE * (h1 / (1.0 + h1)) / (1.0 + h2)


@njit(cache=True)
def _windkessel_rhs(q: float, pc: float, r: float, c: float) -> float:
    """dP_c/dt of the 3-element Windkessel's compliance node (mmHg/s)."""
    return (q - pc / r) / c


@njit(cache=True)
def valve_area(q: float, eoa_max: float, open_min: float, q_open: float) -> float:
    """Effective orifice area A(Q) (cm²) of the quasi-steady opening law at flow Q (mL/s)."""
    if open_min >= 1.0:
        return eoa_max
    if q <= 0.0:
        return eoa_max * open_min
    return eoa_max * (1.0 - (1.0 - open_min) * np.exp(-q / q_open))


@njit(cache=True)
def _rhs(e, v, q, pc, v0, pla, rmv, zc, r, c, eoa_max, omin, qopen, area_ao, cl, ck):
    """Right-hand side of the coupled model at one stage.

    Returns dV/dt, dQ/dt, dP_c/dt and the integrands Q_mv, Q, P_c/R, P_ao, P_lv(Q − Q_mv),
    v, v², K·Q² (v = Q/A(Q) and K·Q² only while Q > 0).
    """
    plv = e * (v - v0)
    qmv = (pla - plv) / rmv if pla > plv else 0.0
    pao = pc + zc * q
    area = valve_area(q, eoa_max, omin, qopen)
    elco = area * area_ao / (area_ao - area)
    inertance = cl / np.sqrt(elco)
    kloss = ck / (elco * elco)
    dq = (plv - pao - kloss * q * abs(q)) / inertance
    if q <= 0.0 and dq < 0.0:
        dq = 0.0
    vel = q / area if q > 0.0 else 0.0
    net = kloss * q * q if q > 0.0 else 0.0
    return (
        qmv - q,
        dq,
        _windkessel_rhs(q, pc, r, c),
        qmv,
        q,
        pc / r,
        pao,
        plv * (q - qmv),
        vel,
        vel * vel,
        net,
    )


@njit(cache=True)
def simulate_batch(
    period_s,
    steps_per_cycle,
    t_peak,
    e_max,
    e_min,
    v_0,
    p_la,
    r_mv,
    z_c,
    r_p,
    c_p,
    valve,
    state,
    adapt,
    targets,
    zc_ratio,
    max_cycles,
    steady_tol,
    adapt_tol,
    project,
    waveforms,
    results,
):
    """Run every patient of the batch to periodic steady state (in place).

    Parameters
    ----------
    period_s, steps_per_cycle : ndarray, shape (n,)
        Cycle length T (s) and the integer number of RK4 steps per cycle (dt = T / steps).
    t_peak : ndarray, shape (n,)
        Time to peak elastance T_max (s); updated in place when ``adapt`` fits the ejection
        time.
    e_max, e_min, v_0, p_la, r_mv, z_c, r_p, c_p : ndarray, shape (n,)
        LV elastances (mmHg/mL), unstressed volume (mL), left-atrial pressure (mmHg), mitral
        resistance, characteristic impedance, peripheral resistance (mmHg·s/mL) and
        compliance (mL/mmHg). With ``adapt`` the elastances, ``r_p``, ``z_c`` and ``c_p``
        are updated in place.
    valve : ndarray, shape (n, len(VALVE))
        Per-patient valve: fully open EOA (cm²), o_min, Q_open (mL/s), ascending-aorta area
        (cm²) and blood density (kg/m³); columns in :data:`VALVE`.
    state : ndarray, shape (n, 3)
        Initial (V, Q, P_c); overwritten with the state at the end of the run.
    adapt : bool
        Personalisation mode: after each cycle, E_min, E_max, R (and Z_c = zc_ratio·R), C and
        (if an ejection-time target is given) T_max are rescaled towards the targets
        (fixed-point iteration, one update per cycle).
    targets : ndarray, shape (n, 5)
        Target EDV, ESV (mL), systolic and diastolic aortic pressure (mmHg) and ejection time
        (s; ≤ 0: keep T_max) (used if adapt).
    zc_ratio : float
        Z_c / R kept during adaptation.
    max_cycles : int
    steady_tol : float
        Stop when the relative cycle-to-cycle change of (V, P_c at cycle start; stroke
        volume) is below this (and, with ``adapt``, the targets are met within adapt_tol).
        0 runs exactly ``max_cycles`` cycles.
    adapt_tol : float
    project : bool
        Apply the periodic projection of the Windkessel node after each cycle (the
        steady-state accelerator). False integrates the plain ODE (code verification).
    waveforms : ndarray, shape (n, 3, m)
        If m > 0, P_lv, P_ao (mmHg) and Q (mL/s) of the last cycle at m equispaced phases.
    results : ndarray, shape (n, len(RES))
        Per-patient results of the last cycle (columns in :data:`RES`).
    """
    n = period_s.shape[0]
    max_steps = 0
    for i in range(n):
        max_steps = max(max_steps, steps_per_cycle[i])
    en = np.empty(2 * max_steps + 1)
    n_wave = waveforms.shape[2]
    buf = np.empty((3, max_steps + 1))
    for i in range(n):
        nst = steps_per_cycle[i]
        period = period_s[i]
        h = period / nst
        t_max = t_peak[i]
        for j in range(2 * nst + 1):
            en[j] = elastance_normalised(0.5 * j * h / t_max)
        v, q, pc = state[i, 0], state[i, 1], state[i, 2]
        emax, emin, v0 = e_max[i], e_min[i], v_0[i]
        pla, rmv, zc, r, c = p_la[i], r_mv[i], z_c[i], r_p[i], c_p[i]
        amax, omin, qopen = valve[i, 0], valve[i, 1], valve[i, 2]
        area_ao, rho = valve[i, 3], valve[i, 4]
        # Garcia coefficients in mmHg units with ELCo in cm²: L = cl/√ELCo, K = ck/ELCo².
        cl = 2.0 * np.pi * rho * 1e-4 / MMHG_PA
        ck = 0.5 * rho * 1e-4 / MMHG_PA
        prev_v, prev_pc, prev_sv = v, pc, -1.0
        zc_i = zc_ratio
        converged = 0.0
        cyc = 0
        for cyc in range(1, max_cycles + 1):
            v_start, pc_start = v, pc
            i_mv = i_q = i_per = i_pao = i_w = i_v = i_v2 = i_net = 0.0
            v_hi, v_lo = v, v
            plv_hi, pao_hi, pao_lo, q_hi, vel_hi = -1e300, -1e300, 1e300, 0.0, 0.0
            t_open, t_ej = -1.0, 0.0
            de = emax - emin
            e_now = de * en[0] + emin
            drive_prev = e_now * (v - v0) - pc
            if q > 0.0:
                t_open = 0.0
            if n_wave:
                buf[0, 0], buf[1, 0], buf[2, 0] = e_now * (v - v0), pc + zc * q, q
            for j in range(nst):
                e1 = e_now
                e2 = de * en[2 * j + 1] + emin
                e4 = de * en[2 * j + 2] + emin
                k1 = _rhs(e1, v, q, pc, v0, pla, rmv, zc, r, c, amax, omin, qopen, area_ao, cl, ck)
                k2 = _rhs(
                    e2,
                    v + 0.5 * h * k1[0],
                    q + 0.5 * h * k1[1],
                    pc + 0.5 * h * k1[2],
                    v0,
                    pla,
                    rmv,
                    zc,
                    r,
                    c,
                    amax,
                    omin,
                    qopen,
                    area_ao,
                    cl,
                    ck,
                )
                k3 = _rhs(
                    e2,
                    v + 0.5 * h * k2[0],
                    q + 0.5 * h * k2[1],
                    pc + 0.5 * h * k2[2],
                    v0,
                    pla,
                    rmv,
                    zc,
                    r,
                    c,
                    amax,
                    omin,
                    qopen,
                    area_ao,
                    cl,
                    ck,
                )
                k4 = _rhs(
                    e4,
                    v + h * k3[0],
                    q + h * k3[1],
                    pc + h * k3[2],
                    v0,
                    pla,
                    rmv,
                    zc,
                    r,
                    c,
                    amax,
                    omin,
                    qopen,
                    area_ao,
                    cl,
                    ck,
                )
                w = h / 6.0
                v = v + w * (k1[0] + 2.0 * k2[0] + 2.0 * k3[0] + k4[0])
                q_new = q + w * (k1[1] + 2.0 * k2[1] + 2.0 * k3[1] + k4[1])
                pc = pc + w * (k1[2] + 2.0 * k2[2] + 2.0 * k3[2] + k4[2])
                i_mv += w * (k1[3] + 2.0 * k2[3] + 2.0 * k3[3] + k4[3])
                i_q += w * (k1[4] + 2.0 * k2[4] + 2.0 * k3[4] + k4[4])
                i_per += w * (k1[5] + 2.0 * k2[5] + 2.0 * k3[5] + k4[5])
                i_pao += w * (k1[6] + 2.0 * k2[6] + 2.0 * k3[6] + k4[6])
                i_w += w * (k1[7] + 2.0 * k2[7] + 2.0 * k3[7] + k4[7])
                i_v += w * (k1[8] + 2.0 * k2[8] + 2.0 * k3[8] + k4[8])
                i_v2 += w * (k1[9] + 2.0 * k2[9] + 2.0 * k3[9] + k4[9])
                i_net += w * (k1[10] + 2.0 * k2[10] + 2.0 * k3[10] + k4[10])
                t0 = j * h
                plv = e4 * (v - v0)
                drive = plv - pc
                # Valve events: opening by the zero of P_lv − P_c (Q = 0 while closed),
                # closure by the zero of Q (then projected onto Q = 0).
                if q <= 0.0 and q_new > 0.0:
                    frac = 0.0
                    if drive_prev < 0.0 < drive:
                        frac = -drive_prev / (drive - drive_prev)
                    t_open = t0 + frac * h
                if q_new < 0.0:
                    if q > 0.0 and t_open >= 0.0:
                        # Closure instant from Q and dQ/dt at the step start (the RK4 end
                        # value is biased: its stages saw the closed valve's dQ/dt = 0).
                        tau = q / (q - q_new) * h
                        if k1[1] < 0.0:
                            tau = min(-q / k1[1], h)
                        t_ej += t0 + tau - t_open
                        t_open = -1.0
                    q_new = 0.0
                q = q_new
                drive_prev = drive
                e_now = e4
                pao = pc + zc * q
                v_hi = max(v_hi, v)
                v_lo = min(v_lo, v)
                plv_hi = max(plv_hi, plv)
                pao_hi = max(pao_hi, pao)
                pao_lo = min(pao_lo, pao)
                q_hi = max(q_hi, q)
                if q > 0.0:
                    vel_hi = max(vel_hi, q / valve_area(q, amax, omin, qopen))
                if n_wave:
                    buf[0, j + 1], buf[1, j + 1], buf[2, j + 1] = plv, pao, q
            if t_open >= 0.0:  # still ejecting at the end of the cycle
                t_ej += period - t_open
            sv = i_q
            res = results[i]
            res[0], res[1], res[2], res[3] = sv, v_hi, v_lo, plv_hi
            res[4], res[5], res[6], res[7] = pao_hi, pao_lo, i_pao / period, i_w
            res[8], res[9], res[10], res[11] = t_ej, i_v, i_v2, vel_hi
            res[12], res[13] = i_net, q_hi
            res[16], res[17] = i_mv, i_per
            res[18], res[19], res[20], res[21] = v_start, v, pc_start, pc
            change = max(
                abs(v - prev_v) / max(abs(v), 1e-12),
                abs(pc - prev_pc) / max(abs(pc), 1e-12),
                abs(sv - prev_sv) / max(abs(sv), 1e-12),
            )
            prev_v, prev_pc, prev_sv = v, pc, sv
            if not (change == change) or not (v == v):  # NaN: give up on this patient
                break
            if project:
                # Periodic projection of the linear Windkessel node: over one cycle
                # P_c(T) = a·P_c(0) + b with a = exp(−T/RC) for the flow of that cycle; the
                # fixed point b/(1 − a) lies a/(1 − a)·(P_c(T) − P_c(0)) away. The jump
                # towards it is damped (GAIN_CAP, ADAPT_RELAX); it vanishes once periodic,
                # so the converged cycle is exact.
                a = np.exp(-period / (r * c))
                gain = a / (1.0 - a)
                # Distance to the projected periodic state: with a slow Windkessel (a → 1)
                # the cycle-to-cycle change alone understates how far from periodic it is.
                change = max(change, abs(gain * (pc - pc_start)) / max(abs(pc), 1e-12))
                if adapt:
                    gain *= ADAPT_RELAX
                jump = min(gain, GAIN_CAP) * (pc - pc_start)
                if adapt:  # parameters still move: limit the extrapolation to ±10 %
                    jump = min(max(jump, -0.1 * pc), 0.1 * pc)
                pc += jump
            steady = change < steady_tol
            if adapt:
                edv_t, esv_t = targets[i, 0], targets[i, 1]
                sbp_t, dbp_t = targets[i, 2], targets[i, 3]
                miss = max(
                    abs(v_hi - edv_t) / edv_t,
                    abs(v_lo - esv_t) / edv_t,
                    abs(pao_hi - sbp_t) / sbp_t,
                    abs(pao_lo - dbp_t) / dbp_t,
                    # stroke volume too: EDV and ESV misses of opposite sign add up in SV
                    abs((v_hi - v_lo) - (edv_t - esv_t)) / (edv_t - esv_t),
                )
                et_t = targets[i, 4]
                if et_t > 0.0:
                    miss = max(miss, abs(t_ej - et_t) / et_t)
                # The device run that follows converges the cycle; here the parameters only
                # need to meet the targets on a nearly periodic cycle.
                if change < adapt_tol and miss < adapt_tol:
                    converged = 1.0
                    break
                emin *= min(max((v_hi - v0) / (edv_t - v0), 0.5), 2.0)
                emax *= np.sqrt(min(max((v_lo - v0) / (esv_t - v0), 0.5), 2.0))
                # Arterial updates under-relaxed (square root of the ratio): R and C interact
                # through the diastolic decay time RC, and full steps oscillate.
                level = (pao_hi + 2.0 * pao_lo) / (sbp_t + 2.0 * dbp_t)
                r *= np.sqrt(min(max(1.0 / level, 0.5), 2.0))
                pp_ratio = np.sqrt(min(max((pao_hi - pao_lo) / (sbp_t - dbp_t), 0.5), 2.0))
                if c * pp_ratio > _C_MAX:
                    # A pulse pressure below what Z_c·Q alone produces: lower Z_c instead.
                    c = _C_MAX
                    zc_i = max(zc_i / pp_ratio, 0.01)
                else:
                    c = max(c * pp_ratio, _C_MIN)
                zc = zc_i * r
                if et_t > 0.0 and t_ej > 0.0:
                    t_max *= np.sqrt(min(max(et_t / t_ej, 0.8), 1.25))
                    t_max = min(max(t_max, 0.1 * period), 0.6 * period)
                    for j in range(2 * nst + 1):
                        en[j] = elastance_normalised(0.5 * j * h / t_max)
            elif steady and cyc >= 2:
                converged = 1.0
                break
        results[i, 14] = cyc
        results[i, 15] = converged
        state[i, 0], state[i, 1], state[i, 2] = v, q, pc
        if adapt:
            e_max[i], e_min[i], r_p[i], z_c[i], c_p[i] = emax, emin, r, zc, c
            t_peak[i] = t_max
        for k in range(n_wave):
            s = k * nst / n_wave
            j0 = int(s)
            f = s - j0
            j1 = min(j0 + 1, nst)
            for m in range(3):
                waveforms[i, m, k] = (1.0 - f) * buf[m, j0] + f * buf[m, j1]


@njit(cache=True)
def windkessel_prescribed_flow(q_mean, q_amp, period, r, c, zc, pc0, n_steps, n_cycles):
    """RK4 solution of the 3-element Windkessel under Q(t) = q_mean − q_amp·cos(2πt/T).

    Uses the same Windkessel right-hand side as :func:`simulate_batch` (a unit check of that
    piece against :func:`models.tavr.verification.windkessel_exact`).

    Parameters
    ----------
    q_mean, q_amp : float
        Mean and amplitude of the prescribed inflow (mL/s).
    period : float
        T (s).
    r, c, zc : float
        Peripheral resistance (mmHg·s/mL), compliance (mL/mmHg), characteristic impedance.
    pc0 : float
        P_c at t = 0 (mmHg).
    n_steps : int
        Steps per cycle (dt = T / n_steps).
    n_cycles : int

    Returns
    -------
    ndarray, shape (n_cycles · n_steps + 1,)
        Aortic pressure P_ao = P_c + Z_c·Q at the step times (mmHg).
    """
    h = period / n_steps
    omega = 2.0 * np.pi / period
    total = n_cycles * n_steps
    out = np.empty(total + 1)
    pc = pc0
    out[0] = pc + zc * (q_mean - q_amp)
    for j in range(total):
        t = j * h
        q1 = q_mean - q_amp * np.cos(omega * t)
        q2 = q_mean - q_amp * np.cos(omega * (t + 0.5 * h))
        q4 = q_mean - q_amp * np.cos(omega * (t + h))
        k1 = _windkessel_rhs(q1, pc, r, c)
        k2 = _windkessel_rhs(q2, pc + 0.5 * h * k1, r, c)
        k3 = _windkessel_rhs(q2, pc + 0.5 * h * k2, r, c)
        k4 = _windkessel_rhs(q4, pc + h * k3, r, c)
        pc = pc + h / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
        out[j + 1] = pc + zc * q4
    return out
