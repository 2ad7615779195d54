"""Given-data sensitivity (PAWN, delta) on a trial's own cohort covariates, side by side.

Usage: ``python benchmarks/bench_given_data.py [results/<trial>] [--resamples 100]``

PAWN as isct computes it (:func:`credibility.sensitivity.pawn.ks_slices`: every input and
slice at once) against SALib's ``pawn.analyze`` called once per bootstrap resample (what
isct did before), on the same rows and resamples: the times, their ratio and the largest
difference of the indices. Delta likewise: SALib's estimator functions (what isct called
before) against the compiled kernel densities (:mod:`credibility.sensitivity._delta_kernel`),
on the same resamples. Inputs: the SA
covariates of the trial config, the float endpoints, every arm, the patients simulated ok.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import xarray as xr

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", default=str(ROOT / "results" / "tavr_small_annuli"))
    parser.add_argument("--config", default=str(ROOT / "config" / "config.yaml"))
    parser.add_argument("--resamples", type=int, default=100)
    args = parser.parse_args()
    from SALib.analyze import pawn as salib_pawn

    from credibility.sensitivity.pawn import ks_slices
    from isct.evaluator import float_endpoints
    from isct.trial import load_config

    trial = load_config(args.config, workdir=ROOT)
    covariates = list(trial["sensitivity"]["covariates"])
    res = Path(args.results)
    cohort = xr.open_zarr(res / "cohort.zarr", consolidated=False, chunks=None)
    outcomes = xr.open_zarr(res / "outcomes.zarr", consolidated=False, chunks=None)
    ok = np.flatnonzero((outcomes["status"].values == 0).all(axis=0))
    X = np.column_stack([cohort[c].values[ok] for c in covariates]).astype(float)
    endpoints = float_endpoints(trial.model, trial.endpoints)
    columns = [
        outcomes[e].values[i, ok].astype(float)
        for e in endpoints
        for i in range(outcomes.sizes["arm"])
    ]
    problem = {
        "num_vars": len(covariates),
        "names": covariates,
        "bounds": [[0, 1]] * len(covariates),
    }
    rng = np.random.default_rng(1)
    resamples = rng.integers(0, len(ok), (args.resamples, len(ok)))
    print(
        f"{res.name}: {len(ok)} patients, {len(covariates)} covariates, {len(columns)} output "
        f"columns ({', '.join(endpoints)} x {outcomes.sizes['arm']} arms), "
        f"{args.resamples} bootstrap resamples"
    )

    def run(fn):
        t0 = time.perf_counter()
        out = [
            np.stack([fn(X[i], y[i]) for i in [np.arange(len(ok)), *resamples]]) for y in columns
        ]
        return time.perf_counter() - t0, np.stack(out)

    def salib(Xs, ys):
        r = salib_pawn.analyze(problem, Xs, ys, S=10)
        return np.stack([np.asarray(r["median"]), np.asarray(r["maximum"])])

    t_ref, ref = run(salib)
    t_new, new = run(lambda Xs, ys: ks_slices(Xs, ys, 10))
    print(f"PAWN, SALib per resample: {t_ref:.2f} s")
    print(f"PAWN, all slices at once: {t_new:.2f} s")
    print(
        f"  ratio {t_ref / t_new:.1f}x; largest index difference {np.nanmax(np.abs(ref - new)):.1e}"
    )
    # delta: SALib's estimator functions against the compiled kernels, same resamples
    from credibility.sensitivity.delta import _delta_column, salib_delta_column

    # compile outside the timing
    _delta_column(X[:50], columns[0][:50], covariates, 2, 0.95, np.random.RandomState(0))  # noqa: NPY002
    state = np.random.get_state()  # noqa: NPY002
    results, times = {}, {}

    def _indices(column: dict) -> np.ndarray:
        return np.stack([column[k] for k in ("delta", "delta_conf", "S1", "S1_conf")])

    def salib_columns(y: np.ndarray, rs: np.random.RandomState) -> np.ndarray:
        return salib_delta_column(X, y, args.resamples, 0.95)  # the global generator

    def kernel_columns(y: np.ndarray, rs: np.random.RandomState) -> np.ndarray:
        return _indices(_delta_column(X, y, covariates, args.resamples, 0.95, rs))

    for name, fn in (("salib", salib_columns), ("kernel", kernel_columns)):
        # both draw the same resamples: SALib from the global generator, the kernels from
        # one of their own seeded alike
        np.random.seed(1)  # noqa: NPY002
        rs = np.random.RandomState(1)  # noqa: NPY002
        t0 = time.perf_counter()
        results[name] = np.stack([fn(y, rs) for y in columns])
        times[name] = time.perf_counter() - t0
    np.random.set_state(state)  # noqa: NPY002
    print(f"delta, SALib's estimator functions: {times['salib']:.2f} s")
    print(f"delta, compiled kernel densities:   {times['kernel']:.2f} s")
    print(
        f"  ratio {times['salib'] / times['kernel']:.1f}x; largest index difference "
        f"{np.nanmax(np.abs(results['salib'] - results['kernel'])):.1e}"
    )


if __name__ == "__main__":
    sys.exit(main())
