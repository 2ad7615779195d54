"""Snakemake's command line as ``isct run`` starts it: ``python -m isct._snakemake ARGS``.

It is ``python -m snakemake ARGS``, but the process ends as soon as Snakemake returns. A
normal interpreter exit first waits for Snakemake's scheduler timer thread (up to its 1 s
rate-limit interval) and then tears down every module the stages imported (xarray, dask,
zarr, numba, matplotlib, weasyprint, ...): about 2 s after the last job of a trial, spent on
nothing. Here the exit handlers still run and the standard streams and log files are
flushed; then the process exits with Snakemake's status.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys


def _status(code: object) -> int:
    if code is None:
        return 0
    return code if isinstance(code, int) else 1


def main() -> None:
    from snakemake.cli import main as snakemake_main

    try:
        snakemake_main()
        status = 0
    except SystemExit as exc:
        status = _status(exc.code)
    except BaseException:
        import traceback

        traceback.print_exc()
        status = 1
    try:
        atexit._run_exitfuncs()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(status)


if __name__ == "__main__":
    main()
