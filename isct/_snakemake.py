"""Snakemake's command line as ``isct run`` starts it: ``python -m isct._snakemake ARGS``.

It is ``python -m snakemake ARGS``, with two differences:

* ``--after-go`` first: the process imports Snakemake and isct's stages, then waits for its
  go line (:mod:`isct._ahead`), ``{"go": true, "env": {...}, "args": [...]}``, sets those
  environment variables (the run's cluster), appends those arguments (targets) and only
  then runs Snakemake. ``isct run`` starts it so before it checks the config and starts the
  cluster, and these imports (≈ 2 s) overlap that work. Without a go line (the config was
  bad, the run was cancelled) it exits with status 2, having run nothing.
* The process ends as soon as Snakemake returns (:func:`isct._exit.exit_now`), with
  Snakemake's status.
* A rule's ``benchmark:`` samples memory every :data:`BENCHMARK_SAMPLE_S` seconds, not
  Snakemake's every 0.5 s (:func:`sample_benchmarks_less`).
"""

from __future__ import annotations

import os
import sys

from ._ahead import AFTER_GO, wait_for_go
from ._exit import exit_after, exit_now

#: Seconds between a ``benchmark:``'s memory samples of a stage (Snakemake's first 30: 0.5 s).
BENCHMARK_SAMPLE_S = 5.0


def sample_benchmarks_less() -> None:
    """Let Snakemake's benchmarks sample a stage's memory every :data:`BENCHMARK_SAMPLE_S`.

    The stages are ``run:`` rules, so a benchmark samples this whole process (every stage
    running in it, and its children) with psutil, every 0.5 s for its first 30 samples.
    With the stages overlapping, 3-4 benchmarks sampled at once and reading this big
    process's memory maps took about 2 CPU seconds of the default trial, about 3 s of its
    wall time (measured side by side). Less often, the memory columns are coarser (they
    were the whole process's, not the stage's, anyway); the wall time ``s`` is measured
    as before.
    """
    import snakemake.benchmark

    snakemake.benchmark.BENCHMARK_INTERVAL_SHORT = max(
        BENCHMARK_SAMPLE_S, snakemake.benchmark.BENCHMARK_INTERVAL_SHORT
    )


def _warm_then_wait() -> dict | None:
    """The go message, after the imports this process starts early for: Snakemake, the
    stages and what the first stage (the cohort) needs."""
    import matplotlib.figure  # noqa: F401
    import snakemake.cli  # noqa: F401

    import cohorts  # noqa: F401
    import credibility  # noqa: F401
    import isct.stages.rules  # noqa: F401

    return wait_for_go()


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == [AFTER_GO]:
        message = _warm_then_wait()
        if message is None:
            exit_now(2)
        os.environ.update({str(k): str(v) for k, v in message.get("env", {}).items()})
        args = args[1:] + [str(a) for a in message.get("args", [])]
    from snakemake.cli import main as snakemake_main

    sample_benchmarks_less()
    exit_after(lambda: snakemake_main(args))


if __name__ == "__main__":
    main()
