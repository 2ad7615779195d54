"""Ending an ``isct`` process as soon as its work is done.

A normal interpreter exit waits for idle non-daemon threads (Snakemake's scheduler timer
waits out its 1 s rate-limit interval) and then tears down every module the command imported
(xarray, dask, zarr, numba, matplotlib, weasyprint, ...): about a second after a trial's last
job, half a second after a re-run check, spent on nothing. :func:`exit_now` runs the exit
handlers, shuts logging down and flushes the standard streams (so every file the command
wrote is closed and every line printed), then ends the process with ``status``. It is for
the command-line entry points only, never for a function a library user calls.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
from collections.abc import Callable
from typing import NoReturn

__all__ = ["exit_after", "exit_now", "status_of"]


def status_of(code: object) -> int:
    """The exit status of ``SystemExit(code)``."""
    if code is None:
        return 0
    return code if isinstance(code, int) else 1


def exit_now(status: int) -> NoReturn:
    try:
        atexit._run_exitfuncs()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(status)


def exit_after(call: Callable[[], object]) -> NoReturn:
    """Run a command-line entry point (its return value or ``SystemExit`` is the status),
    then :func:`exit_now`. Any other exception propagates: Python prints it and exits 1."""
    try:
        status = status_of(call())
    except SystemExit as exc:
        status = status_of(exc.code)
    exit_now(status)
