"""Per-patient ``scipy.integrate.solve_ivp`` (LSODA) solution of the kernel's equations.

The same model as :mod:`models.tavr.kernel` — double-Hill LV, ideal-diode mitral valve,
Garcia aortic valve with no backflow, 3-element Windkessel — integrated by an adaptive
stiff/non-stiff solver with the valve handled by event location (integration restarts at
each opening and closure), and the same periodic-steady-state iteration (including the
Windkessel periodic projection) and per-cycle results. It is slow, deliberately plain
Python, and exists to check the compiled fixed-step kernel (test) and to time it against
(benchmark).

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


def _elastance_n(t_n: float) -> float:
    scale, a1, n1, a2, n2 = _HILL
    if t_n <= 0.0:
        return 0.0
    h1 = (t_n / a1) ** n1
    return scale * h1 / (1.0 + h1) / (1.0 + (t_n / a2) ** n2)


def solve_patient_ivp(
    params: Mapping[str, float],
    inertance: float,
    k_loss: float,
    state: np.ndarray,
    *,
    rtol: float = 1e-8,
    atol: float = 1e-8,
    max_cycles: int = 60,
    steady_tol: float = 1e-4,
    samples_per_cycle: int = 4000,
) -> np.ndarray:
    """Run one patient to periodic steady state with LSODA; kernel-compatible results row.

    Parameters
    ----------
    params : mapping of str to float
        ``period_s``, ``t_max``, ``e_max``, ``e_min``, ``v_0``, ``p_la``, ``r_mv``, ``z_c``,
        ``r_p``, ``c_p`` of one patient (units as in :func:`models.tavr.kernel.simulate_batch`).
    inertance, k_loss : float
        Garcia valve coefficients (mmHg·s²/mL, mmHg·s²/mL²).
    state : ndarray, shape (3,)
        Initial V (mL), Q (mL/s), P_c (mmHg).
    rtol, atol : float
        LSODA tolerances.
    max_cycles : int
    steady_tol : float
        Same stopping rule as the kernel.
    samples_per_cycle : int
        Dense-output samples used for the extrema (max P_lv, max/min P_ao, max Q, EDV/ESV).

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

    def elastance(t: float) -> float:
        return (emax - emin) * _elastance_n(t / t_max) + emin

    def rhs(t: float, y: np.ndarray, is_open: bool) -> list[float]:
        v, q, pc = y[0], (y[1] if is_open else 0.0), y[2]
        plv = elastance(t) * (v - v0)
        qmv = (pla - plv) / rmv if pla > plv else 0.0
        pao = pc + zc * q
        dq = (plv - pao - k_loss * q * abs(q)) / inertance if is_open else 0.0
        return [qmv - q, dq, (q - pc / r) / c, qmv, q, pc / r, pao, plv * (q - qmv), q * q]

    def closes(t: float, y: np.ndarray, is_open: bool) -> float:
        return y[1]

    def opens(t: float, y: np.ndarray, is_open: bool) -> float:
        return elastance(t) * (y[0] - v0) - y[2]

    closes.terminal, closes.direction = True, -1.0
    opens.terminal, opens.direction = True, 1.0

    v, q, pc = (float(x) for x in state)
    prev = (v, pc, -1.0)
    out = np.zeros(len(kernel.RES))
    grid = np.linspace(0.0, period, samples_per_cycle + 1)
    cyc = 0
    converged = 0.0
    for cyc in range(1, max_cycles + 1):
        v_start, pc_start = v, pc
        y = np.array([v, q, pc, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
        t = 0.0
        is_open = q > 0.0 or opens(0.0, y, False) > 0.0
        t_ej = 0.0
        pieces = []
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
            pieces.append((t, t_end, sol.sol, is_open))
            if is_open:
                t_ej += t_end - t
            y = sol.y[:, -1].copy()
            if sol.status == 1:  # an event: switch the valve state
                is_open = not is_open
                y[1] = 0.0
            t = t_end
        v, q, pc = y[0], y[1], y[2]
        # V, P_lv, P_ao and Q on a fine grid of the cycle, from each piece's dense output.
        dense = np.zeros((4, grid.size))
        for t0, t1, fn, opened in pieces:
            sel = (grid >= t0) & (grid <= t1)
            if sel.any():
                yy = fn(grid[sel])
                plv = np.array([elastance(tt) for tt in grid[sel]]) * (yy[0] - v0)
                qq = yy[1] if opened else np.zeros(int(sel.sum()))
                dense[:, sel] = np.vstack([yy[0], plv, yy[2] + zc * qq, qq])
        res = kernel.RES
        out[:] = 0.0
        out[res["stroke_volume"]] = y[4]
        out[res["edv"]], out[res["esv"]] = dense[0].max(), dense[0].min()
        out[res["lv_peak"]] = dense[1].max()
        out[res["sbp"]], out[res["dbp"]] = dense[2].max(), dense[2].min()
        out[res["map"]] = y[6] / period
        out[res["stroke_work"]] = y[7]
        out[res["ejection_time"]] = t_ej
        out[res["int_q2"]] = y[8]
        out[res["q_peak"]] = dense[3].max()
        out[res["inflow"]], out[res["outflow"]] = y[3], y[5]
        out[res["v_start"]], out[res["v_end"]] = v_start, v
        out[res["pc_start"]], out[res["pc_end"]] = pc_start, pc
        sv = y[4]
        change = max(abs(v - prev[0]) / abs(v), abs(pc - prev[1]) / abs(pc), abs(sv - prev[2]) / sv)
        prev = (v, pc, sv)
        a = np.exp(-period / (r * c))
        pc = (pc - a * pc_start) / (1.0 - a)
        if change < steady_tol and cyc >= 2:
            converged = 1.0
            break
    out[kernel.RES["cycles"]] = cyc
    out[kernel.RES["converged"]] = converged
    return out
