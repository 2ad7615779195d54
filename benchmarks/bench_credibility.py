"""Benchmark of the credibility evidence/report layer, measured side by side in one run.

1. Report tables (``results_by_arm`` + ``arm_differences`` + ``subgroup_table`` +
   ``failure_table``) at 10^4 and 10^5 patients × 2 arms: time ratio (linear scaling ≈ 10).
2. ``area_metric`` between two weighted sample sets vs ``scipy.stats.wasserstein_distance``
   (same quantity) on 10^5 + 10^5 samples.
3. ``gci`` vectorised over 10^6 quantities vs a Python loop of scalar ``gci`` calls
   (per-quantity cost ratio).
4. ``hash_path`` of a zarr store vs a bare ``hashlib.sha256`` loop over the same files.

Run from the repository root::

    .venv/bin/python benchmarks/bench_credibility.py
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr
from scipy import stats

from credibility.metrics import area_metric
from credibility.tables import arm_differences, failure_table, results_by_arm, subgroup_table
from credibility.verification import gci
from isct.provenance import hash_path

#: Subgroups as a trial config's report.subgroups names them.
SUBGROUPS = [
    {"label": "sex", "variable": "sex", "source": "-"},
    {"label": "age band", "variable": "age_yr", "edges": [75, 85], "source": "-"},
    {"label": "annulus area", "variable": "annulus_area_mm2", "edges": [430], "source": "-"},
]


def _trial(n: int, seed: int = 0) -> tuple[xr.Dataset, xr.Dataset]:
    rng = np.random.default_rng(seed)
    sex = rng.integers(0, 2, n).astype(np.int8)
    area = np.where(sex == 1, rng.normal(512, 110, n), rng.normal(405, 75, n))
    cohort = xr.Dataset(
        {
            "sex": ("patient", sex),
            "age_yr": ("patient", rng.normal(79, 6, n)),
            "bmi_kg_m2": ("patient", rng.normal(27, 5, n)),
            "annulus_area_mm2": ("patient", area),
            "sampling_weight": ("patient", np.ones(n)),
        },
        coords={"patient": np.arange(n)},
    )
    eoa = np.stack([0.0036 * area, 0.0042 * area]) * rng.lognormal(0, 0.1, (2, n))
    status = (rng.random((2, n)) < 0.01).astype(np.int8) * 2
    ppm = np.where(eoa / 1.9 <= 0.65, 2, np.where(eoa / 1.9 <= 0.85, 1, 0)).astype(np.int8)
    dims = ("arm", "patient")
    outcomes = xr.Dataset(
        {
            "mean_gradient_mmhg": (dims, 22.0 / eoa**1.2, {"units": "mmHg"}),
            "eoa_cm2": (dims, eoa, {"units": "cm2"}),
            "eoai_cm2_m2": (dims, eoa / 1.9, {"units": "cm2/m2"}),
            "ppm_class": (dims, ppm),
            "status": (dims, status),
        },
        coords={"arm": ["balloon_expandable", "self_expanding"], "patient": np.arange(n)},
    )
    return cohort, outcomes


def _best(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_tables() -> None:
    res = {}
    for n in (10_000, 100_000):
        cohort, outcomes = _trial(n)

        def run(cohort=cohort, outcomes=outcomes):
            results_by_arm(outcomes, cohort)
            arm_differences(outcomes, cohort)
            subgroup_table(cohort, outcomes, SUBGROUPS)
            failure_table(outcomes)

        res[n] = _best(run)
    print("1. report tables, 2 arms (best of 3)")
    for n, t in res.items():
        print(f"   n = {n:>7}: {t * 1e3:8.1f} ms")
    print(f"   ratio 1e5 / 1e4 = {res[100_000] / res[10_000]:.2f} (10 = linear)")


def bench_area_metric() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 100_000), rng.normal(0.3, 1.2, 100_000)
    wa, wb = rng.uniform(0.5, 2, a.size), rng.uniform(0.5, 2, b.size)
    t_ours = _best(lambda: area_metric(a, b, pred_weights=wa, obs_weights=wb))
    t_scipy = _best(lambda: stats.wasserstein_distance(a, b, wa, wb))
    t_cont = _best(lambda: area_metric(a, stats.norm(0.3, 1.2), pred_weights=wa))
    diff = abs(
        area_metric(a, b, pred_weights=wa, obs_weights=wb)
        - stats.wasserstein_distance(a, b, wa, wb)
    )
    print("2. area metric, 1e5 vs 1e5 weighted samples (best of 3)")
    print(f"   credibility.area_metric        {t_ours * 1e3:8.1f} ms")
    print(f"   scipy wasserstein_distance     {t_scipy * 1e3:8.1f} ms")
    print(f"   ratio ours / scipy = {t_ours / t_scipy:.2f}; |difference| = {diff:.2e}")
    print(f"   vs Normal CDF (1e5 samples)    {t_cont * 1e3:8.1f} ms")


def bench_gci() -> None:
    rng = np.random.default_rng(2)
    m = 1_000_000
    p, c = rng.uniform(1, 3, m), rng.uniform(0.1, 2, m)
    r21, r32 = 1.5, 1.3
    f = [1 + c * h**p for h in (0.01, 0.01 * r21, 0.01 * r21 * r32)]
    t_vec = _best(lambda: gci(*f, r21, r32), repeats=2)
    k = 2_000
    t_loop = _best(lambda: [gci(f[0][i], f[1][i], f[2][i], r21, r32) for i in range(k)], 1)
    per_vec, per_loop = t_vec / m, t_loop / k
    print("3. GCI with non-uniform ratios (fixed-point iteration)")
    print(f"   vectorised, 1e6 quantities: {t_vec:.2f} s = {per_vec * 1e6:.2f} µs/quantity")
    print(f"   scalar loop, {k} quantities: {per_loop * 1e6:.1f} µs/quantity")
    print(f"   ratio loop / vectorised per quantity = {per_loop / per_vec:.0f}")


def bench_hash() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "outcomes.zarr"
        rng = np.random.default_rng(3)
        ds = xr.Dataset({"x": (("arm", "patient"), rng.random((2, 2_500_000)))})
        ds.to_zarr(store, mode="w", encoding={"x": {"chunks": (1, 50_000)}})
        files = sorted(p for p in store.rglob("*") if p.is_file())
        size = sum(p.stat().st_size for p in files)

        def bare():
            for p in files:
                hashlib.sha256(p.read_bytes()).hexdigest()

        t_ours = _best(lambda: hash_path(store))
        t_bare = _best(bare)
        print(f"4. hashing a zarr store: {len(files)} files, {size / 1e6:.1f} MB (best of 3)")
        print(
            f"   isct.provenance.hash_path      {t_ours * 1e3:8.1f} ms ({size / t_ours / 1e6:.0f} MB/s)"
        )
        print(
            f"   bare hashlib loop              {t_bare * 1e3:8.1f} ms ({size / t_bare / 1e6:.0f} MB/s)"
        )
        print(f"   ratio = {t_ours / t_bare:.2f}")


if __name__ == "__main__":
    bench_tables()
    bench_area_metric()
    bench_gci()
    bench_hash()
