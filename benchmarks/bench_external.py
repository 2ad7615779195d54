"""Benchmark (c): per-run overhead of ExternalSolverModel vs a bare ``subprocess.run`` loop.

Both sides do the same useful work per patient — write the input file, run the solver, read
and parse its JSON output — measured side by side in one process, interleaved over
``--repeats`` rounds (median reported), so machine load affects both alike. The model side
adds what the engine gets from it: a working directory per patient (created, then deleted),
Jinja2 rendering, a clean environment, a new session, stdout/stderr log files and the
:func:`models.run_batch` contract checks.

Two solvers:

- ``cp`` copies the rendered input to the output: nearly free, so the time is the overhead;
- ``tests/data/solvers/bernoulli.py`` run by this Python interpreter: a realistic cheap
  solver (its start-up dominates).

Usage::

    .venv/bin/python benchmarks/bench_external.py [--n 200] [--n-python 40] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from models import STATUS, run_batch
from models.external import ExternalSolverModel

ROOT = Path(__file__).resolve().parents[1]
SOLVER = ROOT / "tests" / "data" / "solvers" / "bernoulli.py"
TEMPLATE = '{"velocity_m_s": {{ patient.velocity_m_s }}, "area_cm2": {{ device.area_cm2 }}}'
VARIABLES = {
    "inputs": {"velocity_m_s": {"units": "m s-1", "description": "peak jet velocity"}},
}


def _cp_config(concurrency: int) -> dict:
    return {
        "executable": "cp",
        "args": ["{input}", "{output}"],
        "input_files": {"input.json": {"template": TEMPLATE}},
        "outputs": {"velocity_m_s": {"units": "m s-1", "description": "echo of the input"}},
        "concurrency": concurrency,
        **VARIABLES,
    }


def _python_config(concurrency: int) -> dict:
    return {
        "executable": "{python}",
        "args": [str(SOLVER), "{input}", "{output}", "--patient", "{patient}"],
        "input_files": {"input.json": {"template": TEMPLATE}},
        "outputs": {"gradient_mmhg": {"units": "mmHg", "description": "4 v^2"}},
        "concurrency": concurrency,
        **VARIABLES,
    }


def _bare_loop(argv_of, key: str, v: np.ndarray, area: float, workdir: Path) -> np.ndarray:
    """The baseline: one directory, subprocess.run per patient, parse the JSON output."""
    out = np.empty(v.size)
    for i, vi in enumerate(v.tolist()):
        inp, outp = workdir / "input.json", workdir / "output.json"
        inp.write_text(json.dumps({"velocity_m_s": vi, "area_cm2": area}))
        subprocess.run(argv_of(inp, outp, i), cwd=workdir, check=True, capture_output=True)
        out[i] = json.loads(outp.read_text())[key]
    return out


def _time(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def bench(name, n, repeats, make_config, argv_of, key, expected_of) -> list[tuple[str, float]]:
    rng = np.random.default_rng(20261126)
    v = rng.uniform(0.5, 5.0, n)
    patients = {"patient": np.arange(n, dtype=np.int64), "velocity_m_s": v}
    device = {"area_cm2": 1.5}
    expected = expected_of(v)
    modes = {
        "bare subprocess.run loop": None,
        "ExternalSolverModel, concurrency=1": 1,
        "ExternalSolverModel, concurrency=2": 2,
        "ExternalSolverModel, concurrency=4": 4,
    }
    models = {
        label: ExternalSolverModel.from_config(make_config(c)) for label, c in modes.items() if c
    }
    times: dict[str, list[float]] = {label: [] for label in modes}
    with tempfile.TemporaryDirectory(prefix="isct-bench-ext-") as tmp:
        for r in range(repeats):
            for label in modes:
                work = Path(tmp) / f"{r}-{len(times[label])}-{label.split(',')[-1].strip()}"
                work.mkdir()
                if label in models:
                    settings = {"runs_dir": work, "arm": "a"}
                    dt, out = _time(
                        lambda m=models[label], s=settings: run_batch(m, patients, device, s)
                    )
                    assert (out["status"] == STATUS["ok"]).all(), label
                    np.testing.assert_allclose(out[key], expected, rtol=1e-12)
                    assert not any((work / "a").iterdir()), "successful workdirs must be deleted"
                else:
                    dt, y = _time(lambda w=work: _bare_loop(argv_of, key, v, 1.5, w))
                    np.testing.assert_allclose(y, expected, rtol=1e-12)
                shutil.rmtree(work)
                times[label].append(dt)
    bare = statistics.median(times["bare subprocess.run loop"]) / n
    print(f"\n{name}: n={n} runs per mode, median of {repeats} interleaved rounds")
    print(f"{'mode':<38}{'ms/run':>9}{'vs bare':>9}{'overhead ms/run':>17}")
    rows = []
    for label, ts in times.items():
        per_run = statistics.median(ts) / n
        rows.append((label, per_run))
        print(
            f"{label:<38}{per_run * 1e3:>9.2f}{per_run / bare:>9.2f}{(per_run - bare) * 1e3:>17.2f}"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="patients per mode, cp solver")
    parser.add_argument("--n-python", type=int, default=40, help="patients per mode, Python solver")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cp = shutil.which("cp")
    print(f"python {sys.version.split()[0]}, cp = {cp}")
    bench(
        "solver = cp (pure overhead)",
        args.n,
        args.repeats,
        _cp_config,
        lambda inp, outp, i: [cp, str(inp), str(outp)],
        "velocity_m_s",
        lambda v: v,
    )
    bench(
        "solver = python bernoulli.py",
        args.n_python,
        args.repeats,
        _python_config,
        lambda inp, outp, i: [
            sys.executable,
            str(SOLVER),
            str(inp),
            str(outp),
            "--patient",
            str(i),
        ],
        "gradient_mmhg",
        lambda v: 4.0 * v**2,
    )


if __name__ == "__main__":
    main()
