"""Benchmark: generate and write TAVR cohorts of 10^4 … 10^6 patients into zarr.

Each size runs in its own subprocess so that peak memory is comparable:

- ``peak RSS``: ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of the subprocess (whole
  process, interpreter and libraries included) after ``write_cohort`` returned;
- ``import RSS``: the same just before generation (libraries loaded, one warm-up patient);
- ``traced peak``: :mod:`tracemalloc` peak of Python/numpy allocations during
  ``write_cohort`` only.

Run from the repository root::

    .venv/bin/python benchmarks/bench_cohorts.py            # 1e4, 1e5, 1e6
    .venv/bin/python benchmarks/bench_cohorts.py --quick    # 1e4, 1e5

The acceptance criterion of the cohort issue is ``peak RSS(1e6) <= 1.5 * peak RSS(1e4)``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def _child(n: int, batch_size: int | None, out: str) -> None:
    import resource
    import time
    import tracemalloc

    import dask.array  # noqa: F401  (imported before tracing: tracemalloc slows imports)
    import zarr  # noqa: F401

    import cohorts

    spec = cohorts.load_spec(cohorts.population_path("tavr_severe_as"))
    cohorts.sample(spec, 1, seed=1)  # warm-up: imports, scipy distribution objects
    import_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    tracemalloc.start()
    t0 = time.perf_counter()
    ds = cohorts.write_cohort(spec, n, out, seed=20240601, batch_size=batch_size)
    seconds = time.perf_counter() - t0
    traced_peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    store_mb = sum(p.stat().st_size for p in Path(out).rglob("*") if p.is_file()) / 2**20
    print(
        json.dumps(
            {
                "n": n,
                "batch_size": batch_size or min(n, cohorts.sampling.DEFAULT_BATCH_SIZE),
                "seconds": seconds,
                "patients_per_s": n / seconds,
                "import_rss_mb": import_rss,
                "peak_rss_mb": peak_rss,
                "traced_peak_mb": traced_peak,
                "store_mb": store_mb,
                "acceptance_rate": float(ds.attrs["acceptance_rate"]),
            }
        )
    )


def _run(n: int, batch_size: int | None, tmp: str) -> dict:
    out = str(Path(tmp) / f"cohort_{n}_{batch_size}.zarr")
    cmd = [sys.executable, __file__, "--child", str(n), "--out", out]
    if batch_size:
        cmd += ["--batch-size", str(batch_size)]
    res = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="sizes 1e4 and 1e5 only")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.batch_size, args.out)
        return
    runs = [(10_000, None), (100_000, None)]
    if not args.quick:
        runs += [(1_000_000, None), (1_000_000, 10_000)]
    with tempfile.TemporaryDirectory() as tmp:
        results = [_run(n, b, tmp) for n, b in runs]
    header = (
        f"| {'patients':>9} | {'batch':>6} | {'time (s)':>8} | {'patients/s':>10} | "
        f"{'import RSS (MB)':>14} | {'peak RSS (MB)':>13} | {'traced peak (MB)':>16} | "
        f"{'store (MB)':>10} | {'acceptance':>10} |"
    )
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for r in results:
        print(
            f"| {r['n']:>9,} | {r['batch_size']:>6,} | {r['seconds']:>8.2f} | "
            f"{r['patients_per_s']:>10,.0f} | {r['import_rss_mb']:>14.0f} | "
            f"{r['peak_rss_mb']:>13.0f} | {r['traced_peak_mb']:>16.1f} | "
            f"{r['store_mb']:>10.1f} | {r['acceptance_rate']:>10.4f} |"
        )
    base = results[0]
    for r in results[1:]:
        print(
            f"n={r['n']:,} (batch {r['batch_size']:,}) vs n={base['n']:,}: "
            f"peak RSS x{r['peak_rss_mb'] / base['peak_rss_mb']:.2f}, "
            f"traced peak x{r['traced_peak_mb'] / base['traced_peak_mb']:.2f}, "
            f"time x{r['seconds'] / base['seconds']:.1f} for x{r['n'] / base['n']:.0f} patients"
        )


if __name__ == "__main__":
    main()
