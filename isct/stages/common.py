"""What every stage shares (``workflow/rules/common.smk``): the trial and the logging.

A Snakemake script builds the stage's :class:`~isct.trial.Trial` with :func:`trial_of` — the
Snakemake config validated and frozen, the calibrate stage's result applied — and calls the
stage's ``run`` function with it and the paths Snakemake hands it.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from ..cluster import ENV_WORKERS, single_threaded_numerics
from ..trial import Trial

__all__ = ["in_stage_context", "placeholder_figure", "running_stage", "trial_of"]

T = TypeVar("T")


def trial_of(config: Mapping[str, Any], calibration: str | os.PathLike | None = None) -> Trial:
    """The trial of a Snakemake config, with the calibration (``calibration.json``) applied."""
    trial = Trial.from_dict(config, source="<snakemake config>")
    return trial.with_calibration(calibration)


#: The stage the current thread works for (its log file); None outside a stage. A thread a
#: stage starts runs in a copy of its context (:func:`in_stage_context`) to log to it too.
_STAGE: contextvars.ContextVar[str | None] = contextvars.ContextVar("isct_stage", default=None)


class _StageRecords(logging.Filter):
    """A stage's log file keeps the records of that stage's threads, and those of threads
    working for no stage (Dask's, zarr's: what went wrong around it) but Snakemake's own
    (Snakemake prints those)."""

    def __init__(self, stage: str) -> None:
        super().__init__()
        self.stage = stage

    def filter(self, record: logging.LogRecord) -> bool:
        stage = _STAGE.get()
        if stage is None:
            return not record.name.startswith("snakemake")
        return stage == self.stage


def _console() -> logging.Handler:
    console = logging.StreamHandler()
    console.addFilter(lambda r: r.levelno >= logging.WARNING or r.name.startswith("isct"))
    return console


def _quiet_zarr_about_snakemake() -> None:
    # Snakemake marks directory() outputs with this file; zarr rightly ignores it
    warnings.filterwarnings("ignore", message="Object at .snakemake_timestamp")


class _Shared:
    """What the stages running in one process share: the console handler, the root level and
    the worker count, set by the first stage to start and put back by the last to end."""

    lock = threading.Lock()
    running = 0
    console: logging.Handler | None = None
    saved: tuple[int, str | None] = (logging.WARNING, None)


@contextlib.contextmanager
def running_stage(log_file: str, threads: int | None = None) -> Iterator[None]:
    """Run one stage inside the Snakemake process (the rules' ``run:`` blocks).

    ``isct run`` runs Snakemake with ``--force-use-threads``, so a rule's ``run:`` block runs
    in a thread of the Snakemake process instead of a new Python process per stage (each
    paid ≈ 2 s importing isct, xarray, zarr and distributed). Independent stages (UQ,
    sensitivity, credibility) may run at the same time, in threads of their own, on the
    run's one cluster. While the block runs, the records of the stage's threads go to its log
    file (:func:`in_stage_context` for a thread the stage starts), and warnings and isct's
    records to stderr; ``threads`` sizes an embedded LocalCluster unless the command line
    chose the workers or a scheduler already. The process-wide settings are put back when the
    last stage ends. Snakemake run without that flag spawns each ``run:`` job as its own
    process, which runs the same block.
    """
    root = logging.getLogger()
    handler = logging.FileHandler(log_file, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    handler.addFilter(_StageRecords(str(log_file)))
    with _Shared.lock:
        if _Shared.running == 0:
            _Shared.saved = (root.level, os.environ.get(ENV_WORKERS))
            _Shared.console = _console()
            root.addHandler(_Shared.console)
            root.setLevel(logging.INFO)
            if threads and _Shared.saved[1] is None:
                os.environ[ENV_WORKERS] = str(threads)
            _quiet_zarr_about_snakemake()
            logging.captureWarnings(True)
            single_threaded_numerics()  # as under `isct run`, whichever way Snakemake started
        _Shared.running += 1
        root.addHandler(handler)
    token = _STAGE.set(str(log_file))
    try:
        logging.getLogger("isct.stages").info(
            "stage runs in process %d, thread %s", os.getpid(), threading.current_thread().name
        )
        yield
    finally:
        _STAGE.reset(token)
        with _Shared.lock:
            root.removeHandler(handler)
            handler.close()
            _Shared.running -= 1
            if _Shared.running == 0:
                root.removeHandler(_Shared.console)
                level, workers = _Shared.saved
                root.setLevel(level)
                if workers is None:
                    os.environ.pop(ENV_WORKERS, None)


def in_stage_context(fn: Callable[..., T]) -> Callable[..., T]:
    """``fn`` to run in another thread (a pool's) as part of the current stage: it logs to the
    stage's log file. Each call runs in a fresh copy of the caller's context."""
    context = contextvars.copy_context()

    def run(*args: Any, **kwargs: Any) -> T:
        return context.copy().run(fn, *args, **kwargs)

    return run


def placeholder_figure(path: str | os.PathLike, text: str) -> None:
    """A figure that only says why the analysis it stands for did not run."""
    from matplotlib.figure import Figure  # no pyplot state: stages may draw in threads

    fig = Figure(figsize=(6, 1.5))
    ax = fig.subplots()
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
