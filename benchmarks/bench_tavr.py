"""Benchmark: TAVR model speed, and the compiled kernel against a per-patient LSODA solution.

Measures patient-simulations per second per core (CPU time of this single-threaded process)
of

* the whole personalised model, ``TAVRModel.simulate`` (deployment, personalisation, device
  run to periodic steady state, virtual echo), on the default cohort;
* the device run alone with the compiled RK4 kernel (``run_device``), dt = 1 ms;
* the same device run with ``scipy.integrate.solve_ivp(method="LSODA")`` patient by patient
  (``models.tavr.reference_solver``), rtol = atol = 1e-6.

The comparison is like for like: the reference solves the same equations (flow-dependent
orifice included) from the same personalised state, with the kernel's steady-state rule (the
same change test and damped periodic projection) and extrema sampled at the kernel's step
times; the cycles each needed are printed beside the rates. It checks that the two device runs
agree on the endpoints and prints the ratio.

Usage: ``python benchmarks/bench_tavr.py [n_kernel] [n_lsoda]`` (defaults 2000 and 20).
"""

from __future__ import annotations

import sys
import time

import numpy as np

import cohorts
from models import run_batch
from models.tavr import TAVRModel
from models.tavr.kernel import RES
from models.tavr.physiology import (
    checked_settings,
    personalise,
    random_effects,
    run_device,
    true_endpoints,
    valve_table,
)
from models.tavr.reference_solver import solve_patient_ivp

_KEYS = (
    "mean_gradient_true_mmhg",
    "eoa_true_cm2",
    "net_mean_gradient_mmhg",
    "stroke_volume_ml",
    "ejection_time_s",
    "peak_velocity_m_s",
)
_PARAMS = ("period_s", "t_max", "e_max", "e_min", "v_0", "p_la", "r_mv", "z_c", "r_p", "c_p")


def _timed(fn):
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def main(n_kernel: int = 2000, n_lsoda: int = 20) -> None:
    spec = cohorts.load_spec(cohorts.population_path("tavr_severe_as"))
    ds = cohorts.sample(spec, n_kernel, seed=1)
    model = TAVRModel()
    p = {k: ds[k].values for k in model.inputs}
    device = {"family": "balloon_expandable"}
    run_batch(model, {k: v[:4] for k, v in p.items()}, device, {})  # JIT compile / cache load

    out_all, w_all, c_all = _timed(lambda: run_batch(model, p, device, {}))
    s = checked_settings({})
    effects = random_effects(p["patient_seed"])
    geometry, _, _ = model.deployed_valves(p, device, s, effects)
    fit = personalise(p, s)
    valve = valve_table(geometry["eoa_max_cm2"], s)
    (out, ok), w_dev, c_dev = _timed(lambda: run_device(fit, valve, s))

    idx = np.flatnonzero(ok)[:n_lsoda]
    steps = np.maximum(np.rint(fit["period_s"] / float(s["dt_s"])), 8).astype(int)
    rows, w_ivp, c_ivp = _timed(
        lambda: np.array(
            [
                solve_patient_ivp(
                    {k: fit[k][i] for k in _PARAMS},
                    valve[i],
                    fit["state"][i],
                    steps_per_cycle=steps[i],
                    rtol=1e-6,
                    atol=1e-6,
                )
                for i in idx
            ]
        )
    )
    ref = true_endpoints(rows, valve[idx])
    worst = {k: float(np.max(np.abs(out[k][idx] / ref[k] - 1.0))) for k in _KEYS}
    cycles_kernel = float(np.mean(out["cycles"][idx]))
    cycles_lsoda = float(np.mean(rows[:, RES["cycles"]]))

    def rate(n: int, seconds: float) -> float:
        return n / seconds

    print(
        f"patients: kernel {n_kernel}, LSODA {idx.size}; status ok {np.mean(out_all['status'] == 0):.4f}"
    )
    print(
        f"mean cycles to steady state (device run): kernel {cycles_kernel:.2f}, LSODA {cycles_lsoda:.2f}"
    )
    print("                                    per core (CPU s)    wall")
    for label, n, c, w in (
        ("TAVRModel.simulate (whole model)", n_kernel, c_all, w_all),
        ("kernel device run", n_kernel, c_dev, w_dev),
        ("solve_ivp LSODA device run", idx.size, c_ivp, w_ivp),
    ):
        print(f"{label:34s} {rate(n, c):10.1f} /s      {rate(n, w):10.1f} /s")
    ratio = rate(n_kernel, c_dev) / rate(idx.size, c_ivp)
    print(f"speed-up kernel device run vs LSODA device run (CPU time): {ratio:.0f}x")
    print("max relative endpoint difference kernel vs LSODA (same patients, same valve):")
    for k, v in worst.items():
        print(f"  {k:26s} {100 * v:.4f} %")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
