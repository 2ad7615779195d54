"""Per-patient ``scipy.integrate.solve_ivp`` (LSODA) solution of the kernel's equations.

The same model as :mod:`models.tavr.kernel` — double-Hill LV, ideal-diode mitral valve,
Garcia aortic valve whose orifice opens with the flow, no backflow, 3-element Windkessel —
integrated by an adaptive stiff/non-stiff solver with the valve handled by event location
(integration restarts at each opening and closure). The steady-state rule is the kernel's
own: the same relative change test (including the distance to the projected periodic state),
the same damped periodic projection of the Windkessel node (gain capped at
:data:`models.tavr.kernel.GAIN_CAP`), and extrema sampled at the kernel's step times (T/dt
points per cycle). So the two differ only by the integrator, which makes this the fair
reference for the benchmark and the accuracy test.

References
----------
Petzold L. Automatic selection of methods for solving stiff and nonstiff systems of ordinary
differential equations. SIAM J Sci Stat Comput 1983;4:136–148. doi:10.1137/0904010
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.integrate import solve_ivp

from . import kernel

__all__ = ["solve_patient_ivp"]

_HILL = (1.55, 0.7, 1.9, 1.17, 21.9)  # Stergiopulos et al. 1996 (as in kernel.py)


def _elastance_n(t_n: np.ndarray) -> np.ndarray:
    scale, a1, n1, a2, n2 = _HILL
    t_n = np.maximum(np.asarray(t_n, dtype=float), 0.0)
    h1 = (t_n / a1) ** n1
    return scale * h1 / (1.0 + h1) / (1.0 + (t_n / a2) ** n2)


def solve_patient_ivp(
    params: Mapping[str, float],
    valve: np.ndarray,
    state: np.ndarray,
    *,
    steps_per_cycle: int,
    rtol: float = 1e-8,
    atol: float = 1e-8,
    max_cycles: int = 60,
    steady_tol: float = 1e-4,
) -> np.ndarray:
    """Run one patient to periodic steady state with LSODA; kernel-compatible results row.

    Parameters
    ----------
    params : mapping of str to float
        ``period_s``, ``t_max``, ``e_max``, ``e_min``, ``v_0``, ``p_la``, ``r_mv``, ``z_c``,
        ``r_p``, ``c_p`` of one patient (units as in :func:`models.tavr.kernel.simulate_batch`).
    valve : ndarray, shape (len(kernel.VALVE),)
        The patient's valve row (fully open EOA, o_min, Q_open, aortic area, density).
    state : ndarray, shape (3,)
        Initial V (mL), Q (mL/s), P_c (mmHg).
    steps_per_cycle : int
        The kernel's steps per cycle: extrema are sampled at the same times.
    rtol, atol : float
        LSODA tolerances.
    max_cycles : int
    steady_tol : float
        Same stopping rule as the kernel.

    Returns
    -------
    ndarray, shape (len(kernel.RES),)
        Results of the last cycle, columns as :data:`models.tavr.kernel.RES`.
    """
    period = float(params["period_s"])
    t_max = float(params["t_max"])
    emax, emin, v0 = float(params["e_max"]), float(params["e_min"]), float(params["v_0"])
    pla, rmv = float(params["p_la"]), float(params["r_mv"])
    zc, r, c = float(params["z_c"]), float(params["r_p"]), float(params["c_p"])
    amax, omin, qopen, area_ao, rho = (float(x) for x in valve)
    cl = 2.0 * np.pi * rho * 1e-4 / kernel.MMHG_PA
    ck = 0.5 * rho * 1e-4 / kernel.MMHG_PA

    def elastance(t):
        return (emax - emin) * _elastance_n(np.asarray(t) / t_max) + emin

    def area(q):
        if omin >= 1.0:
            return amax
        if q <= 0.0:
            return amax * omin
        return amax * (1.0 - (1.0 - omin) * np.exp(-q / qopen))

    def rhs(t, y, is_open):
        v, q, pc = y[0], (y[1] if is_open else 0.0), y[2]
        plv = float(elastance(t)) * (v - v0)
        qmv = (pla - plv) / rmv if pla > plv else 0.0
        pao = pc + zc * q
        a = area(q)
        elco = a * area_ao / (area_ao - a)
        dq = (
            (plv - pao - ck / (elco * elco) * q * abs(q)) / (cl / np.sqrt(elco)) if is_open else 0.0
        )
        vel = q / a if q > 0.0 else 0.0
        net = ck / (elco * elco) * q * q if q > 0.0 else 0.0
        return [
            qmv - q,
            dq,
            (q - pc / r) / c,
            qmv,
            q,
            pc / r,
            pao,
            plv * (q - qmv),
            vel,
            vel * vel,
            net,
        ]

    def closes(t, y, is_open):
        return y[1]

    def opens(t, y, is_open):
        return float(elastance(t)) * (y[0] - v0) - y[2]

    closes.terminal, closes.direction = True, -1.0
    opens.terminal, opens.direction = True, 1.0

    v, q, pc = (float(x) for x in state)
    prev = (v, pc, -1.0)
    out = np.zeros(len(kernel.RES))
    grid = np.linspace(0.0, period, int(steps_per_cycle) + 1)
    e_grid = elastance(grid)
    cyc = 0
    converged = 0.0
    for cyc in range(1, max_cycles + 1):
        v_start, pc_start = v, pc
        y = np.array([v, q, pc] + [0.0] * 8)
        t = 0.0
        is_open = q > 0.0 or opens(0.0, y, False) > 0.0
        t_ej = 0.0
        dense = np.zeros((4, grid.size))
        while t < period:
            sol = solve_ivp(
                rhs,
                (t, period),
                y,
                method="LSODA",
                rtol=rtol,
                atol=atol,
                args=(is_open,),
                events=closes if is_open else opens,
                dense_output=True,
            )
            t_end = float(sol.t[-1])
            sel = (grid >= t) & (grid <= t_end)
            if sel.any():
                yy = sol.sol(grid[sel])
                qq = np.maximum(yy[1], 0.0) if is_open else np.zeros(int(sel.sum()))
                dense[:, sel] = np.vstack([yy[0], e_grid[sel] * (yy[0] - v0), yy[2] + zc * qq, qq])
            if is_open:
                t_ej += t_end - t
            y = sol.y[:, -1].copy()
            if sol.status == 1:  # an event: switch the valve state
                is_open = not is_open
                y[1] = 0.0
            t = t_end
        v, q, pc = y[0], y[1], y[2]
        res = kernel.RES
        out[:] = 0.0
        out[res["stroke_volume"]] = y[4]
        out[res["edv"]], out[res["esv"]] = dense[0].max(), dense[0].min()
        out[res["lv_peak"]] = dense[1].max()
        out[res["sbp"]], out[res["dbp"]] = dense[2].max(), dense[2].min()
        out[res["map"]] = y[6] / period
        out[res["stroke_work"]] = y[7]
        out[res["ejection_time"]] = t_ej
        out[res["vti"]], out[res["int_v2"]], out[res["int_net"]] = y[8], y[9], y[10]
        flows = dense[3]
        out[res["q_peak"]] = flows.max()
        out[res["v_peak"]] = max((f / area(f) for f in flows if f > 0.0), default=0.0)
        out[res["inflow"]], out[res["outflow"]] = y[3], y[5]
        out[res["v_start"]], out[res["v_end"]] = v_start, v
        out[res["pc_start"]], out[res["pc_end"]] = pc_start, pc
        sv = y[4]
        change = max(abs(v - prev[0]) / abs(v), abs(pc - prev[1]) / abs(pc), abs(sv - prev[2]) / sv)
        prev = (v, pc, sv)
        # the kernel's damped periodic projection and its distance in the stopping test
        a = np.exp(-period / (r * c))
        gain = a / (1.0 - a)
        change = max(change, abs(gain * (pc - pc_start)) / max(abs(pc), 1e-12))
        pc += min(gain, kernel.GAIN_CAP) * (pc - pc_start)
        if change < steady_tol and cyc >= 2:
            converged = 1.0
            break
    out[kernel.RES["cycles"]] = cyc
    out[kernel.RES["converged"]] = converged
    return out
