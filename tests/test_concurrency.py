"""Stages that run at the same time, processes started ahead, and what keeps them exact.

* ``running_stage``: stages in threads of one process, each logging to its own file.
* ``single_threaded_numerics``: BLAS on one thread (results independent of cores and timing).
* delta's resamples come from a generator of its own (numpy's global state untouched).
* ``isct._snakemake --after-go`` and ``isct verify --after-go``: started ahead, they run
  nothing without a go line.
* ``run_recorded(prepare=...)``: a failing preparation stops the child and leaves no record.
* the engine records the model's own CPU time per store.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from isct._snakemake import BENCHMARK_SAMPLE_S
from isct.cluster import ENV_WORKERS, single_threaded_numerics
from isct.locks import RECORDS, run_recorded
from isct.stages.common import in_stage_context, running_stage

REPO = Path(__file__).resolve().parents[1]


def test_stages_running_at_once_each_log_to_their_own_file(tmp_path, monkeypatch):
    """Two stages in two threads at the same time (as UQ and sensitivity under isct run):
    each file holds its own stage's records, those of a thread it started, and those of no
    stage; the process-wide settings come back when the last one ends."""
    monkeypatch.delenv(ENV_WORKERS, raising=False)
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    both_in = threading.Barrier(2)
    log = logging.getLogger("isct.test")

    def stage(name: str) -> None:
        with running_stage(str(tmp_path / f"{name}.log"), threads=3):
            both_in.wait(timeout=30)
            log.info("from %s", name)
            helper = threading.Thread(target=in_stage_context(log.info), args=(f"{name} helper",))
            helper.start()
            helper.join()
            if name == "a":  # a thread of no stage (a new thread starts outside any)
                other = threading.Thread(
                    target=logging.getLogger("some.library").warning, args=("no stage",)
                )
                other.start()
                other.join()
            both_in.wait(timeout=30)

    threads = [threading.Thread(target=stage, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    a, b = ((tmp_path / f"{n}.log").read_text() for n in ("a", "b"))
    assert "from a" in a and "a helper" in a and "from b" not in a and "b helper" not in a
    assert "from b" in b and "b helper" in b and "from a" not in b and "a helper" not in b
    assert "no stage" in a and "no stage" in b  # Dask's or zarr's records reach every stage
    assert root.level == level and root.handlers == handlers
    assert ENV_WORKERS not in os.environ


def test_numerics_run_on_one_blas_thread(monkeypatch):
    """Every isct command and stage: BLAS on one thread, now and for libraries loaded later
    (a multithreaded BLAS makes the last bits depend on the core count and the timing)."""
    from threadpoolctl import threadpool_info, threadpool_limits

    for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(key, raising=False)
    with threadpool_limits(limits=2):  # two threads, put back afterwards
        single_threaded_numerics()
        blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
        assert blas and all(i["num_threads"] == 1 for i in blas)
        assert os.environ["OPENBLAS_NUM_THREADS"] == "1"


def test_delta_draws_from_its_own_generator():
    """delta's resamples come from a generator of its own: analyses running in threads at
    the same time (as the sensitivity stage beside UQ) give what each gives alone, and
    numpy's global state is neither read nor changed."""
    from concurrent.futures import ThreadPoolExecutor

    from credibility.sensitivity import delta

    rng = np.random.default_rng(5)
    X = rng.normal(size=(800, 3))
    Y = [X[:, 0] + k * X[:, 1] ** 2 + 0.1 * rng.normal(size=800) for k in (0.1, 0.3, 0.5, 0.7)]

    def indices(y: np.ndarray) -> np.ndarray:
        ds = delta.analyze(list("abc"), X, y, seed=7, num_resamples=40)
        return np.stack([ds[k].values for k in ("delta", "delta_conf", "S1", "S1_conf")])

    state = np.random.get_state()  # noqa: NPY002
    try:
        np.random.seed(1)  # noqa: NPY002
        alone = [indices(y) for y in Y]
        assert np.array_equal(np.random.get_state()[1], _seeded_state(1))  # noqa: NPY002
        for _ in range(3):
            with ThreadPoolExecutor(4) as pool:
                together = list(pool.map(indices, Y))
            for a, b in zip(alone, together, strict=True):
                np.testing.assert_array_equal(a, b)
    finally:
        np.random.set_state(state)  # noqa: NPY002


def _seeded_state(seed: int) -> np.ndarray:
    return np.random.RandomState(seed).get_state()[1]  # noqa: NPY002


def _run(argv, stdin_text, cwd, timeout=120):
    return subprocess.run(
        [sys.executable, *argv],
        input=stdin_text,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
    )


@pytest.mark.parametrize("line", ["", "stop\n", '{"go": false}\n', "{not json\n"])
def test_snakemake_started_ahead_runs_nothing_without_a_go_line(tmp_path, line):
    """`python -m isct._snakemake --after-go ...` imports, then waits: no go line, no run
    (status 2, no Snakemake folder in the run directory)."""
    argv = ["-m", "isct._snakemake", "--after-go", "--snakefile", str(REPO / "Snakefile")]
    argv += ["--directory", str(tmp_path), "--cores", "1", "--dry-run"]
    proc = _run(argv, line, REPO)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert not (tmp_path / ".snakemake").exists()


def test_snakemake_started_ahead_runs_with_the_go_lines_arguments(tmp_path):
    """With a go line, the environment and the arguments it carries reach Snakemake: the
    dry run of the tiny trial lists its jobs and the target the line appended."""
    argv = ["-m", "isct._snakemake", "--after-go", "--snakefile", str(REPO / "Snakefile")]
    argv += ["--configfile", str(REPO / "tests" / "data" / "tiny.yaml")]
    argv += ["--directory", str(tmp_path), "--cores", "1", "--dry-run"]
    go = {"go": True, "env": {"ISCT_TEST_MARK": "1"}, "args": ["results/ci_tiny/simulate.json"]}
    proc = _run(argv, json.dumps(go) + "\n", REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert "simulate" in out and "report" not in out.split("Job stats")[-1]


def test_stage_benchmarks_sample_less_often_under_isct(tmp_path):
    """The Snakemake that isct starts samples a benchmark's memory every 5 s, not 0.5 s: a
    ``run:`` rule (as every stage is) run in Snakemake's own process (``--force-use-threads``,
    as ``isct run`` passes) reads the interval there, and its benchmark file is written."""
    (tmp_path / "Snakefile").write_text(
        "rule probe:\n"
        "    output: 'interval.txt'\n"
        "    benchmark: 'probe.tsv'\n"
        "    run:\n"
        "        import snakemake.benchmark as b\n"
        "        open(output[0], 'w').write(str(b.BENCHMARK_INTERVAL_SHORT))\n"
    )
    argv = ["-m", "isct._snakemake", "--snakefile", str(tmp_path / "Snakefile")]
    argv += ["--directory", str(tmp_path), "--cores", "1", "--quiet", "--force-use-threads"]
    proc = _run(argv, "", REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert float((tmp_path / "interval.txt").read_text()) == BENCHMARK_SAMPLE_S == 5.0
    assert "s\th:m:s" in (tmp_path / "probe.tsv").read_text()


def test_verify_started_ahead_checks_nothing_without_go(tmp_path):
    out = tmp_path / "v.json"
    argv = ["-m", "isct", "verify", str(tmp_path / "nowhere"), "--json", str(out), "--after-go"]
    proc = _run(argv, "", tmp_path)
    assert proc.returncode == 2 and not out.exists()
    # with go it checks, and the folder has no manifest: one clear error, status 2
    proc = _run(argv, '{"go": true}\n', tmp_path)
    assert proc.returncode == 2 and "manifest" in proc.stderr and not out.exists()


def test_a_failed_preparation_stops_the_child_and_leaves_no_record(tmp_path):
    """run_recorded(prepare=...) starts the child first; if preparing fails (a bad config),
    the child gets no go line and exits, the error propagates, no run record stays."""
    marker = tmp_path / "ran"
    child = [
        sys.executable,
        "-c",
        f"import sys; line = sys.stdin.readline(); open({str(marker)!r}, 'w').write(line); "
        "sys.exit(0 if line.strip() else 2)",
    ]

    @contextlib.contextmanager
    def bad():
        raise ValueError("config is bad")
        yield {}

    with pytest.raises(ValueError, match="config is bad"):
        run_recorded(child, workdir=tmp_path, env=dict(os.environ), prepare=bad)
    assert marker.read_text() == ""  # it read end of file: no go line
    assert not list((tmp_path / RECORDS).glob("*"))

    started = []

    @contextlib.contextmanager
    def good():
        yield {"env": {"A": "1"}, "args": ["t"], "then": lambda: started.append(True)}

    assert run_recorded(child, workdir=tmp_path, env=dict(os.environ), prepare=good) == 0
    assert json.loads(marker.read_text()) == {"go": True, "env": {"A": "1"}, "args": ["t"]}
    assert started == [True] and not list((tmp_path / RECORDS).glob("*"))


def test_engine_records_the_models_cpu_time(client, tmp_path):
    """Every store carries the CPU seconds its model took (run_batch on the workers), summed
    over every call: the benchmark's ratio to the model's own time in the run."""
    from test_engine import ARMS, orifice_cohort

    from isct.engine import simulate

    out = tmp_path / "t.zarr"
    cohort = orifice_cohort(400)
    first = simulate(cohort, "orifice", ARMS, out, client=client, batch_size=100, limit=200)
    cpu_first = float(first.attrs["isct_model_cpu_s"])
    last = json.loads(first.attrs["isct_last_run"])
    assert cpu_first > 0 and last["model_cpu_s"] == pytest.approx(cpu_first, abs=2e-3)
    again = simulate(cohort, "orifice", ARMS, out, client=client, batch_size=100)
    added = json.loads(again.attrs["isct_last_run"])["model_cpu_s"]
    assert added > 0
    assert float(again.attrs["isct_model_cpu_s"]) == pytest.approx(cpu_first + added, abs=2e-3)
