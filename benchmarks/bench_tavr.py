"""Benchmark: TAVR compiled kernel vs a per-patient solve_ivp (LSODA) of the same equations.

Measures patient-simulations per second per core (CPU time of this single-threaded process,
and wall time) for

* the device run of the compiled RK4 kernel (``run_device``: personalised patients → periodic
  steady state → endpoints), dt = 1 ms;
* the full ``TAVRModel.simulate`` (personalisation + device run);
* the same device run with ``scipy.integrate.solve_ivp(method="LSODA")`` patient by patient
  (``models.tavr.reference_solver``), rtol = atol = 1e-6,

checks that the two device runs agree within 0.5 % on the endpoints, and prints the ratio.

It then prints the evidence that goes with the numbers: the reference-table validation, the
population PPM rates (Clopper–Pearson 95 % intervals) beside the Bern registry and PARTNER 3,
and the GCI of every endpoint over dt = 4, 2, 1 ms.

Usage: ``python benchmarks/bench_tavr.py [n_kernel] [n_lsoda]`` (defaults 2000 and 20).
"""

from __future__ import annotations

import sys
import time

import numpy as np

from models.tavr import TAVRModel, personalise
from models.tavr.model import endpoints, garcia_coefficients, run_device
from models.tavr.reference_solver import solve_patient_ivp
from models.tavr.verification import (
    gci_evidence,
    matched_patients,
    ppm_rates,
    time_step_study,
    validation_table,
)

_KEYS = (
    "mean_gradient_mmhg",
    "peak_gradient_mmhg",
    "eoa_gorlin_cm2",
    "stroke_volume_ml",
    "lv_peak_pressure_mmhg",
    "lv_stroke_work_j",
    "ejection_time_s",
)
_PARAMS = ("period_s", "t_max", "e_max", "e_min", "v_0", "p_la", "r_mv", "z_c", "r_p", "c_p")


def _cohort(n: int) -> dict[str, np.ndarray]:
    try:
        import cohorts

        spec = cohorts.load_spec(cohorts.population_path("tavr_severe_as"))
        ds = cohorts.sample(spec, n, seed=1)
        return {k: ds[k].values for k in TAVRModel.inputs}
    except ImportError:  # the models package alone: reference-file means and spreads
        rng = np.random.default_rng(1)
        return {
            "heart_rate_bpm": rng.normal(70, 12, n).clip(45, 110),
            "bsa_m2": rng.normal(2.0, 0.2, n),
            "bmi_kg_m2": rng.normal(27, 4, n).clip(16, 45),
            "lvef_pct": rng.normal(55, 10, n).clip(25, 75),
            "svi_ml_m2": rng.normal(39, 7, n).clip(20, 60),
            "sbp_mmhg": rng.normal(130, 15, n),
            "dbp_mmhg": rng.normal(70, 10, n),
            "annulus_area_mm2": rng.normal(460, 100, n).clip(280, 680),
            "annulus_perimeter_mm": rng.normal(76, 9, n).clip(57, 94),
        }


def _timed(fn):
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def main(n_kernel: int = 2000, n_lsoda: int = 20) -> None:
    p = _cohort(n_kernel)
    eoa = np.full(n_kernel, 1.45)  # SAPIEN 3 23 mm, reference table
    model = TAVRModel()
    small = {k: v[:4] for k, v in p.items()}
    model.simulate(small, {"family": "balloon_expandable"}, {})  # JIT compile / cache load

    fit, w_fit, c_fit = _timed(lambda: personalise(p, np.full(n_kernel, 3.0)))
    (out, ok), w_dev, c_dev = _timed(lambda: run_device(fit, p, eoa))
    _, w_all, c_all = _timed(lambda: model.simulate(p, {"family": "balloon_expandable"}, {}))

    idx = np.flatnonzero(ok)[:n_lsoda]
    inertance, k_loss = garcia_coefficients(eoa, np.full(n_kernel, 32.5), np.full(n_kernel, 1050.0))
    rows, w_ivp, c_ivp = _timed(
        lambda: np.array(
            [
                solve_patient_ivp(
                    {k: fit[k][i] for k in _PARAMS},
                    inertance[i],
                    k_loss[i],
                    fit["state"][i],
                    rtol=1e-6,
                    atol=1e-6,
                )
                for i in idx
            ]
        )
    )
    sub = {k: v[idx] for k, v in p.items()}
    ref = endpoints(rows, eoa[idx], k_loss[idx], sub, np.full(idx.size, 1050.0))
    worst = {k: float(np.max(np.abs(out[k][idx] / ref[k] - 1.0))) for k in _KEYS}

    def rate(n: int, seconds: float) -> float:
        return n / seconds

    print(f"patients: kernel {n_kernel}, LSODA {idx.size}; converged {ok.mean():.3f}")
    print(f"mean cycles to steady state (device run): {np.mean(out['cycles'][ok]):.1f}")
    print("                              per core (CPU s)    wall")
    for label, n, c, w in (
        ("kernel device run", n_kernel, c_dev, w_dev),
        ("personalisation (kernel)", n_kernel, c_fit, w_fit),
        ("TAVRModel.simulate (both)", n_kernel, c_all, w_all),
        ("solve_ivp LSODA device run", idx.size, c_ivp, w_ivp),
    ):
        print(f"{label:28s} {rate(n, c):10.1f} /s      {rate(n, w):10.1f} /s")
    ratio_dev = rate(n_kernel, c_dev) / rate(idx.size, c_ivp)
    ratio_all = rate(n_kernel, c_all) / rate(idx.size, c_ivp)
    print(f"speed-up kernel device run vs LSODA (CPU time): {ratio_dev:.0f}x")
    print(f"speed-up full simulate (incl. personalisation) vs LSODA device run: {ratio_all:.0f}x")
    print("max relative endpoint difference kernel vs LSODA:")
    for k, v in worst.items():
        print(f"  {k:26s} {100 * v:.4f} %")

    print("\nvalidation (matched patients, 5 per row): model - published")
    for r in validation_table():
        print(
            f"  {r['family']:18s} {r['size_mm']:2d} mm"
            f"  gradient {r['published_mean_gradient_mmhg']:5.1f}"
            f" -> {r['model_mean_gradient_mmhg']:5.2f} ({r['gradient_difference_mmhg']:+.2f})"
            f"  EOA {r['published_eoa_cm2']:.2f} -> Gorlin {r['model_eoa_gorlin_cm2']:.3f}"
            f" ({r['gorlin_difference_cm2']:+.3f})  SV {r['model_stroke_volume_ml']:.1f} mL"
        )

    print(f"\nPPM rates, cohort of {n_kernel} (95 % exact intervals) beside published figures")
    for family in ("balloon_expandable", "self_expanding"):
        res = model.simulate(p, {"family": family}, {})
        for r in ppm_rates(res["ppm_class"], res["status"], family):
            comps = ", ".join(
                f"{c['source']} {100 * c['rate']:.1f} % ({'inside' if c['inside'] else 'outside'})"
                for c in r["comparators"]
            )
            print(
                f"  {family:18s} {r['class']:8s} {100 * r['rate']:5.1f} %"
                f" [{100 * r['low']:.1f}, {100 * r['high']:.1f}]  vs {comps}"
            )

    study = time_step_study(
        matched_patients("balloon_expandable", 23, n=10),
        {"family": "balloon_expandable"},
        [4e-3, 2e-3, 1e-3],
    )
    print("\nGCI (Fs 1.25, dt 4/2/1 ms, 10 patients): median / max relative, median order")
    for name, row in gci_evidence(study)["endpoints"].items():
        order = "—" if row["order_median"] is None else f"{row['order_median']:.2f}"
        print(
            f"  {name:28s} {100 * row['gci_fine_median']:.5f} % / {100 * row['gci_fine_max']:.5f} %"
            f"  p {order}"
        )


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
