"""Snakemake's command line as ``isct run`` starts it: ``python -m isct._snakemake ARGS``.

It is ``python -m snakemake ARGS``, with two differences:

* ``--after-go`` first: the process imports Snakemake and isct's stages, then waits for one
  line on its stdin, ``{"go": true, "env": {...}, "args": [...]}``, sets those environment
  variables (the run's cluster), appends those arguments (targets) and only then runs
  Snakemake. ``isct run`` starts it so before it checks
  the config and starts the cluster, and these imports (≈ 2 s) overlap that work. Without a
  go line (the config was bad, the run was cancelled) it exits with status 2, having run
  nothing.
* The process ends as soon as Snakemake returns (:func:`isct._exit.exit_now`), with
  Snakemake's status.
"""

from __future__ import annotations

import json
import os
import sys

from ._exit import exit_now, status_of

AFTER_GO = "--after-go"


def _wait_for_go() -> list[str] | None:
    """The arguments to append, once the go line came; None without one."""
    # the imports this process starts early for: Snakemake, the stages and what the first
    # stage (the cohort) needs
    import matplotlib.figure  # noqa: F401
    import snakemake.cli  # noqa: F401

    import cohorts  # noqa: F401
    import credibility  # noqa: F401
    import isct.stages.rules  # noqa: F401

    line = sys.stdin.readline()
    try:
        message = json.loads(line) if line.strip() else {}
    except json.JSONDecodeError:
        return None
    if not isinstance(message, dict) or message.get("go") is not True:
        return None
    os.environ.update({str(k): str(v) for k, v in message.get("env", {}).items()})
    return [str(a) for a in message.get("args", [])]


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == [AFTER_GO]:
        more = _wait_for_go()
        if more is None:
            exit_now(2)
        args = args[1:] + more
    from snakemake.cli import main as snakemake_main

    try:
        snakemake_main(args)
        status = 0
    except SystemExit as exc:
        status = status_of(exc.code)
    except BaseException:
        import traceback

        traceback.print_exc()
        status = 1
    exit_now(status)


if __name__ == "__main__":
    main()
