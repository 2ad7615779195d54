"""Benchmark: match 10^6 TAVR candidate patients to a baseline table (weights and select).

Each method runs in its own subprocess so that peak memory is comparable:

- ``generate s``: ``cohorts.sample`` of the candidates (not part of the matching time);
- ``match s``: ``cohorts.match(...)`` - binding the table, entropy balancing, (selection),
  and the certificate of the result;
- ``cohort RSS``: ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of the subprocess after
  generating the candidates (interpreter, libraries and the in-memory cohort);
- ``peak RSS``: the same after matching (whole process);
- ``traced peak``: :mod:`tracemalloc` peak of Python/numpy allocations during ``match``.

The table (16 figures, 15 moment conditions) is illustrative, not a publication: figures a
little away from the TAVR population spec so that the weights have work to do.

Run from the repository root::

    .venv/bin/python benchmarks/bench_matching.py            # 10^6 candidates
    .venv/bin/python benchmarks/bench_matching.py --n 100000

The target of the matching issue is < 30 s per method for 10^6 candidates on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

TABLE = {
    "name": "bench_table1",
    "citation": "illustrative figures for the benchmark (no publication)",
    "n": 500,
    "targets": [
        {"variable": "age_yr", "mean": 79.0, "sd": 6.0},
        {"variable": "sex", "proportions": {"female": 0.42, "male": 0.58}},
        {"variable": "bmi_kg_m2", "median": 27.5, "iqr": [24.5, 31.0]},
        {"label": "obesity", "where": "bmi_kg_m2 >= 30", "proportion": 0.33},
        {"variable": "annulus_area_mm2", "subgroup": "sex == 'female'", "n": 210, "mean": 415,
         "sd": 78},
        {"variable": "annulus_area_mm2", "subgroup": "sex == 'male'", "n": 290, "mean": 520,
         "sd": 105},
        {"variable": "lvef_pct", "mean": 56.0, "sd": 11.0},
        {"variable": "sbp_mmhg", "mean": 133.0, "sd": 19.0},
    ],
}  # fmt: skip


def _child(n: int, method: str) -> None:
    import resource
    import time
    import tracemalloc

    import cohorts

    spec = cohorts.load_spec(cohorts.population_path("tavr_severe_as"))
    t0 = time.perf_counter()
    ds = cohorts.sample(spec, n, seed=20240601)
    generate = time.perf_counter() - t0
    cohorts.match(ds.isel(patient=slice(0, 20_000)), TABLE, method="weights")  # warm-up
    cohort_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    tracemalloc.start()
    t0 = time.perf_counter()
    options = {"size": max(1000, n // 100)} if method == "select" else {}
    result = cohorts.match(ds, TABLE, method=method, **options)
    seconds = time.perf_counter() - t0
    traced_peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    info = result.summary[method]
    print(
        json.dumps(
            {
                "method": method,
                "n_candidates": n,
                "n_cohort": int(result.cohort.sizes["patient"]),
                "n_conditions": info["n_conditions"],
                "iterations": info["iterations"],
                "generate_s": generate,
                "match_s": seconds,
                "cohort_rss_mb": cohort_rss,
                "peak_rss_mb": peak_rss,
                "traced_peak_mb": traced_peak,
                "kish_n": result.summary["kish_n"],
                "acceptance_rate": info.get("acceptance_rate"),
                "targets_met": f"{result.summary['n_passed']}/{result.summary['n_targets']}",
                "threads": os.environ.get("OMP_NUM_THREADS", "default"),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="candidate patients")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.n, args.child)
        return
    rows = []
    for method in ("weights", "select"):
        cmd = [sys.executable, __file__, "--child", method, "--n", str(args.n)]
        res = subprocess.run(cmd, check=True, capture_output=True, text=True)
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]))
    print(f"\ncores available: {os.cpu_count()}")
    print(
        "| method | candidates | cohort | conditions | iterations | generate (s) | match (s) "
        "| cohort RSS (MB) | peak RSS (MB) | traced peak (MB) | Kish n | acceptance | targets met |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        acc = "" if r["acceptance_rate"] is None else f"{r['acceptance_rate']:.3f}"
        print(
            f"| {r['method']} | {r['n_candidates']:,} | {r['n_cohort']:,} | {r['n_conditions']} "
            f"| {r['iterations']} | {r['generate_s']:.1f} | {r['match_s']:.1f} "
            f"| {r['cohort_rss_mb']:.0f} | {r['peak_rss_mb']:.0f} | {r['traced_peak_mb']:.0f} "
            f"| {r['kish_n']:,.0f} | {acc} | {r['targets_met']} |"
        )


if __name__ == "__main__":
    main()
