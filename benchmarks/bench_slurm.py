"""SLURM workers against a LocalCluster, side by side in one run (issue 15).

A cheap vectorised model (``models.examples.OrificeModel``) on n patients × 2 arms through
``isct.simulate`` with the Dask workers (a) in an embedded LocalCluster and (b) in SLURM jobs
started by dask-jobqueue from a cluster profile (default ``config/clusters/slurm.yaml``: 2
jobs of one single-threaded worker each, so both clusters have 2 workers). Per patient-arm
overhead = (engine time − the model called once on the whole arrays in this process) / (n ×
arms), for the median of ``--repeats`` simulations (each into a new store) and with the
cluster's start-up added; the SLURM/LocalCluster ratio is printed. Each
(cluster, n) runs in a fresh subprocess, so peak RSS (``ru_maxrss``) of the client and of the
largest worker is comparable between the two sizes.

Needs a reachable SLURM (``tests/cluster/slurm-up.sh`` starts a one-node one as root).

Usage: python benchmarks/bench_slurm.py [--n 1000000] [--small 100000] [--batch-size 50000]
       [--repeats 3] [--profile config/clusters/slurm.yaml]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import make_cohort  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _shown(path: str) -> str:
    """A path as the repository sees it (relative inside the checkout)."""
    resolved = Path(path).resolve()
    return str(resolved.relative_to(REPO)) if resolved.is_relative_to(REPO) else path


ARMS = [
    {"name": "small", "device": {"eoa_cm2": 1.2}},
    {"name": "large", "device": {"eoa_cm2": 1.8}},
]


def run_one(cluster: str, n: int, batch_size: int, profile: str, repeats: int) -> dict:
    """Measure one (cluster, n) in this process (called in a fresh subprocess)."""
    from isct.cluster import open_client
    from isct.engine import simulate
    from models import get_model

    tmp = Path(tempfile.mkdtemp(prefix="isct-bench-slurm-", dir=os.getcwd()))
    try:
        cohort = tmp / "cohort.zarr"
        make_cohort(cohort, n)
        os.chdir(tmp)  # the SLURM run's directory: job records and job logs go here
        t0 = time.perf_counter()
        with open_client(profile=profile if cluster == "slurm" else None, n_workers=2) as client:
            client.wait_for_workers(2, timeout=300)
            t_up = time.perf_counter() - t0
            runs = []
            for k in range(repeats):  # each into a new store; the median is reported
                t1 = time.perf_counter()
                out = simulate(
                    cohort, "orifice", ARMS, tmp / f"out{k}.zarr", client=client,
                    batch_size=batch_size, progress=False,
                )  # fmt: skip
                runs.append(time.perf_counter() - t1)
            t_run = float(np.median(runs))
            worker_rss = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        t_total = t_up + t_run  # start-up and one simulation
        client_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        import xarray as xr

        ds = xr.open_zarr(cohort, consolidated=False).load()
        model = get_model("orifice")
        patients = {k: ds[k].values for k in model.inputs}
        t0 = time.perf_counter()
        direct = [model.simulate(patients, arm["device"], {}) for arm in ARMS]
        t_direct = time.perf_counter() - t0
        for i in range(len(ARMS)):  # spot check: the engine's values are the model's
            got = out["mean_gradient_mmhg"].isel(arm=i, patient=slice(0, 2000)).values
            assert np.array_equal(got, direct[i]["mean_gradient_mmhg"][:2000])
        assert int((out["status"] == 0).sum()) == n * len(ARMS)
        cells = n * len(ARMS)
        return {
            "cluster": cluster,
            "n": n,
            "batch_size": batch_size,
            "workers": len(worker_rss),
            "startup_s": t_up,
            "run_s": t_run,
            "total_s": t_total,
            "direct_s": t_direct,
            "run_overhead_us": (t_run - t_direct) / cells * 1e6,
            "total_overhead_us": (t_total - t_direct) / cells * 1e6,
            "client_peak_rss_mb": client_rss / 1024,
            "worker_peak_rss_mb": max(worker_rss.values()) / 1024,
        }
    finally:
        os.chdir(REPO)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=50_000)
    parser.add_argument("--profile", default=str(REPO / "config" / "clusters" / "slurm.yaml"))
    parser.add_argument("--repeats", type=int, default=3, help="simulations per cluster")
    parser.add_argument("--one", nargs=2, metavar=("CLUSTER", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        cluster, n = args.one[0], int(args.one[1])
        print(json.dumps(run_one(cluster, n, min(args.batch_size, n), args.profile, args.repeats)))
        return
    rows = []
    for n in (args.small, args.n):
        for cluster in ("local", "slurm"):
            proc = subprocess.run(
                [sys.executable, __file__, "--one", cluster, str(n),
                 "--batch-size", str(args.batch_size), "--profile", args.profile,
                 "--repeats", str(args.repeats)],
                capture_output=True, text=True, cwd=REPO,
            )  # fmt: skip
            if proc.returncode != 0:
                sys.exit(f"{cluster} n={n} failed:\n{proc.stderr[-3000:]}")
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(
        f"{len(ARMS)} arms, orifice model, batch {args.batch_size}, run s = median of "
        f"{args.repeats} simulations per cluster, profile {_shown(args.profile)}"
    )
    print(
        f"{'cluster':>7} {'n':>9} {'workers':>7} {'start s':>8} {'run s':>7} {'direct s':>8} "
        f"{'us/pt-arm run':>13} {'us/pt-arm total':>15} {'client MB':>9} {'worker MB':>9}"
    )
    for r in rows:
        print(
            f"{r['cluster']:>7} {r['n']:>9} {r['workers']:>7} {r['startup_s']:>8.2f} "
            f"{r['run_s']:>7.2f} {r['direct_s']:>8.3f} {r['run_overhead_us']:>13.2f} "
            f"{r['total_overhead_us']:>15.2f} {r['client_peak_rss_mb']:>9.0f} "
            f"{r['worker_peak_rss_mb']:>9.0f}"
        )
    by = {(r["cluster"], r["n"]): r for r in rows}
    local, slurm = by["local", args.n], by["slurm", args.n]
    print(
        f"SLURM / LocalCluster overhead per patient-arm at n={args.n}: "
        f"{slurm['run_overhead_us'] / local['run_overhead_us']:.2f}x (run), "
        f"{slurm['total_overhead_us'] / local['total_overhead_us']:.2f}x (with start-up)"
    )
    for cluster in ("local", "slurm"):
        small, large = by[cluster, args.small], by[cluster, args.n]
        print(
            f"{cluster} peak memory n={args.n} / n={args.small}: client "
            f"{large['client_peak_rss_mb'] / small['client_peak_rss_mb']:.2f}x, worker "
            f"{large['worker_peak_rss_mb'] / small['worker_peak_rss_mb']:.2f}x"
        )


if __name__ == "__main__":
    main()
