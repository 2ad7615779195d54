"""Model evaluations needed for |error| < 0.01 on all Ishigami Sobol indices: PCE vs Saltelli.

Three estimators, side by side in one run, on Ishigami (a = 7, b = 0.1; analytic S1 = 0.3139,
0.4424, 0 and ST = 0.5576, 0.4424, 0.2437):

* ``saltelli``  — :mod:`credibility.sensitivity.sobol` (SALib, scrambled Sobol', first and total
  order only, ``n (d + 2)`` evaluations for base size ``n``);
* ``pce``       — :mod:`credibility.sensitivity.pce` (least-squares PCE, order by LOO error);
* ``campaign``  — an EasyVVUQ-style PCE campaign. EasyVVUQ (PCESampler + PCEAnalysis) cannot be
  installed next to numpy 2, so it is *emulated*: its default design (full-tensor Gaussian
  quadrature of order ``p``, ``(p + 1)^d`` runs, pseudo-spectral projection — the same estimator
  as :func:`credibility.uq._pce.fit_spectral`) and its per-run bookkeeping: one run directory,
  an encoded input file, a SQLite row inserted and committed, the output file written and decoded
  and the row updated and committed. The model runs in-process (EasyVVUQ's ``ExecuteLocal``
  would also start one process per run — see ``bench_external.py`` for that cost).

For the random designs the evaluations needed for one seed are the smallest size from which
every larger size tried also has max |error| < 0.01 (so a lucky size does not count); the table
gives the median and range over seeds. Wall time per evaluation is the time of sample +
evaluate (+ bookkeeping) + analyse at the needed size, divided by its evaluations.

When the peers' venv exists (``make peers``: EasyVVUQ with numpy < 2 in ``.venv-peers``, never
in the project's dependencies; or ``ISCT_PEERS_PYTHON``), two rows come from **real EasyVVUQ
1.x campaigns** (``benchmarks/peers/easyvvuq_ishigami.py``) run side by side: PCESampler +
PCEAnalysis with ``ExecutePython`` (EasyVVUQ's bookkeeping only) and with its usual
run-directory / encoder / ``ExecuteLocal`` / decoder actions.

Run: ``.venv/bin/python benchmarks/bench_sa.py [--seeds 5]``
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from credibility.sensitivity import pce, problem_from_config, sobol
from credibility.uq._pce import fit_spectral, quadrature, sobol_from_coefficients

S1 = np.array([0.3139, 0.4424, 0.0])
ST = np.array([0.5576, 0.4424, 0.2437])
TOL = 0.01
PROBLEM = problem_from_config(
    {"parameters": {f"x{i}": {"dist": "uniform", "low": -np.pi, "high": np.pi} for i in (1, 2, 3)}},
    source="bench_sa.py",
)


def ishigami(X: np.ndarray) -> np.ndarray:
    return np.sin(X[:, 0]) + 7.0 * np.sin(X[:, 1]) ** 2 + 0.1 * X[:, 2] ** 4 * np.sin(X[:, 0])


def max_error(s1: np.ndarray, st: np.ndarray) -> float:
    return float(max(np.abs(s1 - S1).max(), np.abs(st - ST).max()))


def saltelli(n: int, seed: int) -> tuple[int, float, float]:
    t = time.perf_counter()
    X = sobol.sample(PROBLEM, n, seed=seed, calc_second_order=False)
    ds = sobol.analyze(PROBLEM, X, ishigami(X), seed=seed, calc_second_order=False, num_resamples=2)
    err = max_error(ds["S1"].values[0], ds["ST"].values[0])
    return len(X), err, time.perf_counter() - t


def pce_collocation(n: int, seed: int) -> tuple[int, float, float]:
    t = time.perf_counter()
    X = pce.sample(PROBLEM, n, seed=seed)
    ds = pce.analyze(PROBLEM, X, ishigami(X), seed=seed, num_resamples=0)
    err = max_error(ds["S1"].values[0], ds["ST"].values[0])
    return len(X), err, time.perf_counter() - t


def campaign(order: int, workdir: Path) -> tuple[int, float, float]:
    """EasyVVUQ-style campaign: per-run directory, files and SQLite bookkeeping."""
    t = time.perf_counter()
    xi, _ = quadrature(PROBLEM, order)
    X = PROBLEM.from_germ(xi)
    db = sqlite3.connect(workdir / f"campaign_{order}.db")
    db.execute(
        "CREATE TABLE runs (id INTEGER PRIMARY KEY, dir TEXT, params TEXT, status TEXT, result TEXT)"
    )
    y = np.empty(len(X))
    for i, row in enumerate(X):
        run_dir = workdir / f"order{order}" / f"run_{i}"
        run_dir.mkdir(parents=True)
        params = dict(zip(PROBLEM.names, map(float, row), strict=True))
        (run_dir / "input.json").write_text(json.dumps(params))  # encoder
        db.execute(
            "INSERT INTO runs VALUES (?, ?, ?, 'ENCODED', NULL)",
            (i, str(run_dir), json.dumps(params)),
        )
        db.commit()
        x = np.array([json.loads((run_dir / "input.json").read_text())[k] for k in PROBLEM.names])
        (run_dir / "output.csv").write_text(
            f"y\n{float(ishigami(x[None, :])[0])!r}\n"
        )  # the "model"
        value = float((run_dir / "output.csv").read_text().splitlines()[1])  # decoder
        db.execute("UPDATE runs SET status='COLLATED', result=? WHERE id=?", (value, i))
        db.commit()
        y[i] = value
    db.close()
    fit = fit_spectral(PROBLEM, X, y[:, None], order=order)
    s = sobol_from_coefficients(fit)
    err = max_error(s["S1"][0], s["ST"][0])
    return len(X), err, time.perf_counter() - t


def _peers_python() -> str | None:
    candidate = os.environ.get("ISCT_PEERS_PYTHON") or str(
        Path(__file__).resolve().parents[1] / ".venv-peers" / "bin" / "python"
    )
    return candidate if Path(candidate).is_file() else None


def easyvvuq(mode: str, orders: list[int]) -> list[tuple[int, float, float]]:
    """Real EasyVVUQ campaigns in the peers' venv: (runs, max error, wall s) per order."""
    python = _peers_python()
    script = Path(__file__).with_name("peers") / "easyvvuq_ishigami.py"
    proc = subprocess.run(
        [python, str(script), "--mode", mode, "--orders", *map(str, orders)],
        capture_output=True,
        text=True,
        check=True,
    )
    out = []
    for line in proc.stdout.splitlines():
        r = json.loads(line)
        out.append((r["runs"], max_error(np.array(r["S1"]), np.array(r["ST"])), r["wall_s"]))
    return out


def needed(results: list[tuple[int, float, float]]) -> tuple[int, float] | None:
    """Smallest evaluations from which all larger sizes meet the tolerance, and its time."""
    ok_from = None
    for evals, err, secs in reversed(results):
        if err < TOL:
            ok_from = (evals, secs)
        else:
            break
    return ok_from


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    seeds = range(1, args.seeds + 1)
    rows: dict[str, list[tuple[int, float]]] = {"saltelli": [], "pce": []}
    detail: dict[str, list] = {"saltelli": [], "pce": []}
    for seed in seeds:
        res = [saltelli(2**k, seed) for k in range(6, 16)]
        detail["saltelli"].append(res)
        hit = needed(res)
        rows["saltelli"].append(hit if hit else (np.nan, np.nan))
        res = [pce_collocation(n, seed) for n in (60, 80, 100, 130, 160, 200, 260, 330, 420, 540)]
        detail["pce"].append(res)
        hit = needed(res)
        rows["pce"].append(hit if hit else (np.nan, np.nan))
    with tempfile.TemporaryDirectory() as tmp:
        res = [campaign(p, Path(tmp)) for p in range(4, 13)]
    detail["campaign"] = [res]
    hit = needed(res)
    rows["campaign"] = [hit if hit else (np.nan, np.nan)]
    if _peers_python():
        res = easyvvuq("python", list(range(4, 13)))
        detail["easyvvuq_python"] = [res]
        hit = needed(res)
        rows["easyvvuq_python"] = [hit if hit else (np.nan, np.nan)]
        if hit:  # the file-based campaign only at the order that meets the tolerance
            order = 4 + [r[0] for r in res].index(hit[0])
            res = easyvvuq("files", [order])
            detail["easyvvuq_files"] = [res]
            rows["easyvvuq_files"] = [(res[0][0], res[0][2])]
    else:
        print("no peers venv (make peers): EasyVVUQ rows skipped, emulated campaign only")

    Xbig = PROBLEM.sample(1_000_000, seed=0)
    t = time.perf_counter()
    ishigami(Xbig)
    model_ms = (time.perf_counter() - t) / len(Xbig) * 1e3
    print(f"Ishigami a=7 b=0.1; tolerance |error| < {TOL} on S1 and ST; seeds {list(seeds)}")
    print("\nmax |error| by design size (first seed):")
    for name, res in [(k, v[0]) for k, v in detail.items()]:
        print(f"  {name:15s} " + "  ".join(f"{e}:{err:.3g}" for e, err, _ in res))
    print(
        "\n| estimator | evaluations needed (median [min, max] over seeds) | ratio to pce | "
        "wall time per evaluation (ms) |"
    )
    print("|---|---|---|---|")
    med = {k: float(np.nanmedian([r[0] for r in v])) for k, v in rows.items()}
    for k, v in rows.items():
        ev = np.array([r[0] for r in v], dtype=float)
        ms = np.nanmedian([r[1] / r[0] * 1e3 for r in v])
        rng = f"[{np.nanmin(ev):.0f}, {np.nanmax(ev):.0f}]" if len(ev) > 1 else "(deterministic)"
        print(f"| {k} | {med[k]:.0f} {rng} | {med[k] / med['pce']:.1f} | {ms:.4f} |")
    print(f"\nthe vectorised model call alone: {model_ms:.2e} ms per evaluation")


if __name__ == "__main__":
    main()
