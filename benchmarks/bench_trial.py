"""The whole default trial against its own model-run time, measured in one run.

Usage: ``python benchmarks/bench_trial.py [CONFIG] [--cores 2] [--repeats 3]``

1. ``isct run CONFIG --cores N`` in an empty temporary run directory (what ``make trial``
   runs after set-up), timed from outside; each stage's wall time from its Snakemake
   benchmark file.
2. The patient-simulations the run made, counted in its own stores: every engine store under
   ``results/<trial>/`` (the outcomes or the sized trial's waves, the calibration design runs,
   the UQ and SA runs) counts the patient × arm cells it simulated (status >= 0); the copy of
   the sized trial's outcomes is not counted twice. Not counted: the credibility stage's
   3-level time-step refinement (GCI) and the report's separate-process re-run of a few
   patients (each under 1 % of the total here).
3. The kernel's speed on this machine in the same run: the model itself (``run_batch``, no
   engine, no Dask) on the trial's own cohort under its arms, in N processes at once, warmed
   up.
4. Model-run time = simulations / that speed; the ratios of the whole run and of each stage
   to their model-run time.
5. Also the model's own CPU time in the run: every engine store records the CPU seconds its
   tasks spent in the model (``isct_model_cpu_s``); summed over the stores and divided by N,
   the ratios to it ("in run").
6. ``--repeats K``: steps 1-3 K times in turn (a shared machine's speed drifts by several
   per cent between minutes); each pair's ratios, the stage table of the median run and the
   median ratios.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr

ROOT = Path(__file__).resolve().parents[1]
STAGE_STORES = {
    "calibrate": ("calibration/runs",),
    "simulate": ("sizing/waves.zarr", "outcomes.zarr"),
    "uq": ("uq_runs.zarr",),
    "sensitivity": ("sa_runs.zarr",),
}


def _stores(path: Path):
    """Every zarr group under ``path`` holding a ``status`` array (engine stores)."""
    if not path.exists():
        return
    for status in sorted(path.rglob("status/zarr.json")):
        yield status.parent.parent


def _simulated(store: Path) -> tuple[int, float]:
    """Patient × arm cells simulated in an engine store, and the CPU seconds its model took."""
    group = zarr.open_group(store, mode="r")
    cells = int((np.asarray(group["status"][:]) >= 0).sum())
    return cells, float(group.attrs.get("isct_model_cpu_s", float("nan")))


def count_simulations(results: Path) -> tuple[dict[str, int], dict[str, float]]:
    """Per stage: the patient-simulations in its stores and the model's CPU seconds on them."""
    counts, cpu = {}, {}
    for stage, places in STAGE_STORES.items():
        total, seconds = 0, 0.0
        for place in places:
            found = [_simulated(s) for s in _stores(results / place)]
            total += sum(c for c, _ in found)
            seconds += sum(s for _, s in found)
            if found and stage == "simulate":
                break  # the waves store holds every simulation; outcomes.zarr is a copy
        counts[stage], cpu[stage] = total, seconds
    return counts, cpu


def stage_times(results: Path) -> dict[str, float]:
    times = {}
    for tsv in sorted((results / "benchmarks").glob("*.tsv")):
        with tsv.open() as f:
            row = next(csv.DictReader(f, delimiter="\t"))
        times[tsv.stem] = float(row["s"])
    return times


def _kernel_part(config: str, workdir: str, cohort: str, start: int, stop: int):
    """One process: the model on patients ``start:stop`` under every arm; (cells, seconds)."""
    import xarray as xr

    from isct.trial import load_config
    from models import run_batch

    trial = load_config(config, workdir=workdir)
    model = trial.model
    ds = xr.open_zarr(cohort, consolidated=False, chunks=None)
    patients = {k: np.asarray(ds[k].values[start:stop]) for k in model.inputs}
    warm = {k: v[:10] for k, v in patients.items()}
    for arm in trial.arms:  # imports and compiled code
        run_batch(model, warm, arm["device"], trial.settings)
    t0 = time.process_time()
    for arm in trial.arms:
        run_batch(model, patients, arm["device"], trial.settings)
    return (stop - start) * len(trial.arms), time.process_time() - t0


def kernel_speed(config: Path, workdir: Path, results: Path, workers: int) -> float:
    """Patient-simulations per second of the model itself (``models.run_batch``, no engine)
    on the trial's cohort under its arms, in ``workers`` processes at once: cells / the
    slowest process's CPU time."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import xarray as xr

    cohort = results / "cohort.zarr"
    n = xr.open_zarr(cohort, consolidated=False).sizes["patient"]
    edges = np.linspace(0, n, workers + 1).astype(int)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        parts = list(
            pool.map(
                _kernel_part,
                [str(config)] * workers,
                [str(workdir)] * workers,
                [str(cohort)] * workers,
                edges[:-1].tolist(),
                edges[1:].tolist(),
            )
        )
    return sum(c for c, _ in parts) / max(s for _, s in parts)


def one_run(config: Path, cores: int) -> dict:
    """The trial run once in an empty directory, then the kernel's speed on its cohort."""
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "isct.cli", "run", str(config), "--cores", str(cores)]
            + ["--directory", str(workdir)],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            sys.exit(proc.stderr[-4000:])
        from isct.trial import load_config

        name = load_config(config, workdir=ROOT)["trial"]["name"]
        results = workdir / "results" / name
        sims, cpu = count_simulations(results)
        os.environ.setdefault("ISCT_WORKERS", str(cores))
        sizing = results / "sizing" / "sizing.json"
        run = {
            "wall": wall,
            "sims": sims,
            "cpu": cpu,
            "times": stage_times(results),
            "speed": kernel_speed(config, ROOT, results, cores),
            "stop": json.loads(sizing.read_text())["stop"] if sizing.is_file() else None,
        }
    run["model"] = sum(sims.values()) / run["speed"]
    run["in_run"] = sum(cpu.values()) / cores
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default=str(ROOT / "config" / "config.yaml"))
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument(
        "--repeats", type=int, default=1, help="run and measure N times; the median ratio"
    )
    args = parser.parse_args()
    config = Path(args.config).resolve()
    runs = [one_run(config, args.cores) for _ in range(args.repeats)]
    by_ratio = sorted(runs, key=lambda r: r["wall"] / r["model"])
    run = by_ratio[(len(runs) - 1) // 2]  # the median run (the lower middle of an even count)
    sims, cpu, times, speed, wall = (run[k] for k in ("sims", "cpu", "times", "speed", "wall"))
    total = sum(sims.values())
    model, in_run = run["model"], run["in_run"]
    print(f"config {config.relative_to(ROOT) if config.is_relative_to(ROOT) else config}, "
          f"{args.cores} cores, {time.strftime('%Y-%m-%d')}")  # fmt: skip
    if run["stop"]:
        print(f"sized trial: {run['stop']['text']}")
    if len(runs) > 1:
        print(f"{len(runs)} runs, each followed by its kernel speed measurement:")
        for i, r in enumerate(runs, 1):
            print(
                f"  run {i}: whole {r['wall']:.1f} s, model {r['model']:.1f} s "
                f"({r['speed']:.0f}/s), in run {r['in_run']:.1f} s; ratios "
                f"{r['wall'] / r['model']:.2f}, {r['wall'] / r['in_run']:.2f}"
            )
        print("the median run:")
    print(
        f"kernel speed (the model itself on the trial's cohort, {args.cores} processes): {speed:.0f} "
        "patient-simulations/s"
    )
    print(
        f"{'stage':<12} {'simulations':>12} {'model s':>8} {'in run':>8} {'stage s':>8} "
        f"{'ratio':>6} {'in run':>6}"
    )
    for stage in ("cohort", "calibrate", "simulate", "uq", "sensitivity", "credibility"):
        n = sims.get(stage, 0)
        m, r = n / speed, cpu.get(stage, 0.0) / args.cores
        s = times.get(stage, float("nan"))
        ratios = f"{s / m:6.2f} {s / r:6.2f}" if m > 0 else "     -      -"
        print(f"{stage:<12} {n:>12,} {m:>8.1f} {r:>8.1f} {s:>8.1f} {ratios}")
    print(
        f"{'whole run':<12} {total:>12,} {model:>8.1f} {in_run:>8.1f} {wall:>8.1f} "
        f"{wall / model:6.2f} {wall / in_run:6.2f}"
    )
    print(f"whole run / model-run time: {wall / model:.2f} (target <= 1.5)")
    print(f"whole run / the model's own CPU time in the run / {args.cores}: {wall / in_run:.2f}")
    if len(runs) > 1:
        ratios = sorted(r["wall"] / r["in_run"] for r in runs)
        print(f"median of {len(runs)} runs: {wall / model:.2f} (model-run time measured apart), "
              f"{ratios[(len(runs) - 1) // 2]:.2f} (the model's CPU time in the run)")  # fmt: skip


if __name__ == "__main__":
    main()
