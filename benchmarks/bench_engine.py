"""Engine overhead and memory (issue 5 benchmarks a and b), measured side by side in one run.

(a) A cheap vectorised model (``models.examples.OrificeModel``) on N patients × 1 arm:
    ``isct.simulate`` end to end (cluster start-up, template, tasks, region writes, close)
    against calling ``simulate`` on the whole arrays directly in this process. The difference
    divided by N is the engine's per patient-arm overhead.
(b) Peak memory of the client process and of the workers at 10^4 and 10^6 patients, each
    size in a fresh subprocess (ru_maxrss), so the two are comparable.

Usage: python benchmarks/bench_engine.py [--n 1000000] [--batch-size 20000]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr


def make_cohort(path: Path, n: int) -> None:
    import zarr

    block = 250_000
    root = zarr.open_group(path, mode="w")
    rng = np.random.default_rng(0)
    arrays = {
        "svi_ml_m2": (39, 7),
        "bsa_m2": (2.0, 0.2),
        "heart_rate_bpm": (70, 12),
    }
    for name in arrays:
        root.create_array(
            name, shape=(n,), chunks=(block,), dtype="float64", dimension_names=["patient"]
        )
    root.create_array(
        "patient", shape=(n,), chunks=(block,), dtype="int64", dimension_names=["patient"]
    )
    for start in range(0, n, block):
        stop = min(n, start + block)
        for name, (mu, sd) in arrays.items():
            root[name][start:stop] = np.clip(
                rng.normal(mu, sd, stop - start), mu - 3 * sd, mu + 3 * sd
            )
        root["patient"][start:stop] = np.arange(start, stop)


def run_one(n: int, batch_size: int, workers: int) -> dict:
    """Measure one size in this process (called in a fresh subprocess)."""
    from isct.cluster import open_client
    from isct.engine import simulate
    from models import get_model

    tmp = Path(tempfile.mkdtemp(prefix="isct-bench-"))
    try:
        cohort = tmp / "cohort.zarr"
        make_cohort(cohort, n)
        t0 = time.perf_counter()
        with open_client(n_workers=workers) as client:
            out = simulate(
                cohort,
                "orifice",
                [{"name": "a", "device": {"eoa_cm2": 1.5}}],
                tmp / "out.zarr",
                client=client,
                batch_size=batch_size,
                progress=False,
            )
            worker_rss = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        t_engine = time.perf_counter() - t0
        client_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # before the direct call
        ds = xr.open_zarr(cohort, consolidated=False).load()
        model = get_model("orifice")
        patients = {k: ds[k].values for k in model.inputs}
        t0 = time.perf_counter()
        direct = model.simulate(patients, {"eoa_cm2": 1.5}, {})
        t_direct = time.perf_counter() - t0
        check = out["mean_gradient_mmhg"].isel(arm=0, patient=slice(0, 1000)).values
        assert np.array_equal(check, direct["mean_gradient_mmhg"][:1000])
        return {
            "n": n,
            "batch_size": batch_size,
            "workers": workers,
            "direct_s": t_direct,
            "engine_s": t_engine,
            "overhead_us_per_patient_arm": (t_engine - t_direct) / n * 1e6,
            "client_peak_rss_mb": client_rss / 1024,
            "worker_peak_rss_mb": max(worker_rss.values()) / 1024,
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _easyvvuq_overhead(samples: int) -> dict | None:
    """Per-sample overhead of a real EasyVVUQ campaign (peers' venv), or None without it."""
    import os

    python = os.environ.get("ISCT_PEERS_PYTHON") or str(
        Path(__file__).resolve().parents[1] / ".venv-peers" / "bin" / "python"
    )
    if not Path(python).is_file():
        return None
    script = Path(__file__).with_name("peers") / "easyvvuq_ishigami.py"
    proc = subprocess.run(
        [python, str(script), "--mode", "overhead", "--samples", str(samples)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.n, args.batch_size, args.workers)))
        return
    rows = []
    for n in (args.small, args.n):
        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                "--one",
                "--n",
                str(n),
                "--batch-size",
                str(min(args.batch_size, n)),
                "--workers",
                str(args.workers),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(
        f"{'n':>9} {'batch':>6} {'direct s':>9} {'engine s':>9} {'overhead us/pt-arm':>19} {'client MB':>10} {'worker MB':>10}"
    )
    for r in rows:
        print(
            f"{r['n']:>9} {r['batch_size']:>6} {r['direct_s']:>9.3f} {r['engine_s']:>9.2f} "
            f"{r['overhead_us_per_patient_arm']:>19.2f} {r['client_peak_rss_mb']:>10.0f} {r['worker_peak_rss_mb']:>10.0f}"
        )
    small, large = rows
    print(
        f"engine/direct time ratio at n={large['n']}: {large['engine_s'] / large['direct_s']:.0f}x"
    )
    print(
        f"peak memory ratio n={large['n']} / n={small['n']}: client {large['client_peak_rss_mb'] / small['client_peak_rss_mb']:.2f}x, "
        f"worker {large['worker_peak_rss_mb'] / small['worker_peak_rss_mb']:.2f}x"
    )
    peer = _easyvvuq_overhead(2000)
    if peer is None:
        print("no peers venv (make peers): EasyVVUQ overhead not measured")
        return
    ratio = peer["per_sample_ms"] * 1e3 / large["overhead_us_per_patient_arm"]
    print(
        f"EasyVVUQ campaign (ExecutePython, {peer['runs']} samples): {peer['per_sample_ms']:.2f} ms "
        f"per sample = {ratio:.0f}x the isct engine's overhead per patient-arm at n={large['n']}"
    )


if __name__ == "__main__":
    main()
