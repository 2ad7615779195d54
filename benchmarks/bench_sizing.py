"""Sequential sizing against fixed designs sized up front, on the TAVR model.

Usage: ``python benchmarks/bench_sizing.py [--pool 16000] [--seed 1]``

A pool of virtual patients (the default trial's population spec, unmatched) is sized twice
by :func:`isct.sizing.run_sized`, through the engine on a LocalCluster of 2 workers:

* **moderate or severe PPM** (VARC-3 class 1|2), self-expanding − balloon-expandable, in
  annuli <= 430 mm2, to a half-width of 2.5 percentage points. A fixed design sized up front
  can only rely on the variance bound of a difference of two indicators (Var(D) <= 1).
* **mean gradient**, the same contrast and patients, to a half-width of 0.1 mmHg. A fixed
  design sized up front needs a planning SD; here the SD of unpaired arms taken from the
  published per-size SDs of the ASE 2024 reference values (SAPIEN 3 23 mm 4.65 mmHg, Evolut
  26 mm 2.65 mmHg, the sizes small annuli receive; ``credibility/comparators/tavr.csv`` rows
  ase_mg_s3_23 and ase_mg_evolut_26): sqrt(4.65^2 + 2.65^2) = 5.35 mmHg, the design a team
  without the within-patient correlation would size.

For each: patients simulated to the stop, the fixed designs (up front; and the one that knew
the paired SD, which a sequential design cannot beat), their ratios, and the common random
numbers' variance reduction. Everything is printed from this run.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PUBLISHED_SD = {"SAPIEN 3 23 mm": 4.65, "Evolut 26 mm": 2.65}


def _trial(pool: int, sizing: dict, seed: int):
    from isct.trial import Trial

    return Trial.from_dict(
        {
            "trial": {"name": "bench_sizing", "seed": seed},
            "cohort": {"population": "cohorts/populations/tavr_severe_as.yaml", "n": pool},
            "model": {"name": "tavr", "card": "models/tavr/card.yaml"},
            "arms": [
                {"name": "balloon_expandable", "device": {"family": "balloon_expandable"}},
                {"name": "self_expanding", "device": {"family": "self_expanding"}},
            ],
            "simulation": {"batch_size": 500},
            "sizing": sizing,
            "calibration": {"enabled": False},
            "uncertainty": {"enabled": False},
            "sensitivity": {"enabled": False},
            "credibility": {"plan": None, "comparators": None},
        },
        workdir=ROOT,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=16000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("ISCT_WORKERS", "2")
    from distributed import Client, LocalCluster

    import cohorts
    from isct.sizing import run_sized

    common = {
        "contrast": ["self_expanding", "balloon_expandable"],
        "where": "annulus_area_mm2<=430",
        "n_min": 1000,
        "wave": 500,
    }
    cases = {
        "moderate or severe PPM": {
            **common, "endpoint": "ppm_class", "category": "1|2", "half_width": 2.5,
        },
        "mean gradient": {
            **common, "endpoint": "mean_gradient_mmhg", "half_width": 0.1,
            "planning_sd": math.hypot(*PUBLISHED_SD.values()),
        },
    }  # fmt: skip
    spec = cohorts.load_spec(ROOT / "cohorts" / "populations" / "tavr_severe_as.yaml")
    print(f"pool {args.pool} patients (seed {args.seed}), 2 workers, TAVR model defaults")
    with (
        tempfile.TemporaryDirectory() as tmp,
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as cluster,
        Client(cluster) as client,
    ):
        pool = Path(tmp) / "pool.zarr"
        cohorts.write_cohort(spec, args.pool, pool, seed=args.seed)
        for label, sizing in cases.items():
            trial = _trial(args.pool, sizing, args.seed)
            out = Path(tmp) / label.replace(" ", "_")
            out.mkdir()
            t0 = time.perf_counter()
            r = run_sized(
                trial,
                pool=str(pool),
                waves=str(out / "waves.zarr"),
                cohort_out=str(out / "cohort.zarr"),
                outcomes_out=str(out / "outcomes.zarr"),
                summary=str(out / "sizing.json"),
                client=client,
            )
            wall = time.perf_counter() - t0
            stop, fixed = r["stop"], r["fixed"]
            n = stop["n"]
            print(f"\n== {label}: half-width target {r['half_width_target']} {r['unit']}")
            print(f"  looks: {stop['looks']}; stopped: {stop['text']}; {wall:.1f} s")
            last = r["looks"][-1]
            print(
                f"  estimate {last['estimate']:.4g} [{last['low']:.4g}, {last['high']:.4g}] "
                f"(fixed-n interval at the stop: [{last['naive_low']:.4g}, {last['naive_high']:.4g}])"
            )
            print(f"  patients simulated: {n} (x 2 arms = {2 * n} simulations)")
            up, oracle = fixed["up_front_patients"], fixed["oracle_patients"]
            print(f"  fixed design sized up front: {up} patients ({fixed['up_front_basis']})")
            print(f"    ratio sequential / up front: {n / up:.3f}")
            print(f"  fixed design knowing the paired SD: {oracle} patients")
            print(f"    ratio sequential / known-SD fixed: {n / oracle:.3f}")
            crn = r["crn"]
            print(
                f"  common random numbers: Var(a) + Var(b) = {crn['var_a'] + crn['var_b']:.4g}, "
                f"Var(b - a) = {crn['var_paired_difference']:.4g}, ratio {crn['ratio']:.2f} "
                f"(within-patient correlation {crn['correlation']:.3f})"
            )


if __name__ == "__main__":
    main()
