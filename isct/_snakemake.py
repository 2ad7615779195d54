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
"""

from __future__ import annotations

import os
import sys

from ._ahead import AFTER_GO, wait_for_go
from ._exit import exit_after, exit_now


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

    exit_after(lambda: snakemake_main(args))


if __name__ == "__main__":
    main()
