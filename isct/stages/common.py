"""What every stage shares (``workflow/rules/common.smk``): the trial and the logging.

A Snakemake script builds the stage's :class:`~isct.trial.Trial` with :func:`trial_of` — the
Snakemake config validated and frozen, the calibrate stage's result applied — and calls the
stage's ``run`` function with it and the paths Snakemake hands it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..cluster import ENV_WORKERS
from ..trial import Trial

__all__ = ["placeholder_figure", "running_stage", "trial_of"]


def trial_of(config: Mapping[str, Any], calibration: str | os.PathLike | None = None) -> Trial:
    """The trial of a Snakemake config, with the calibration (``calibration.json``) applied."""
    trial = Trial.from_dict(config, source="<snakemake config>")
    return trial.with_calibration(calibration)


def _stage_handlers(log_file: str) -> list[logging.Handler]:
    handler = logging.FileHandler(log_file, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    console = logging.StreamHandler()
    console.addFilter(lambda r: r.levelno >= logging.WARNING or r.name.startswith("isct"))
    return [handler, console]


def _quiet_zarr_about_snakemake() -> None:
    # Snakemake marks directory() outputs with this file; zarr rightly ignores it
    warnings.filterwarnings("ignore", message="Object at .snakemake_timestamp")


#: One stage at a time in a process: the stages share the process's logging, environment and
#: matplotlib state.
_STAGE_LOCK = threading.Lock()


@contextlib.contextmanager
def running_stage(log_file: str, threads: int | None = None) -> Iterator[None]:
    """Run one stage inside the Snakemake process (the rules' ``run:`` blocks).

    ``isct run`` runs Snakemake with ``--force-use-threads``, so a rule's ``run:`` block runs
    in a thread of the Snakemake process instead of a new Python process per stage (each
    paid ≈ 2 s importing isct, xarray, zarr and distributed). While the block runs, the
    stage's logging goes to its log file (and warnings to stderr), and ``threads`` sizes an
    embedded LocalCluster unless the command line chose the workers or a scheduler already;
    both are put back when the stage ends, and stages of one process run one at a time. Snakemake run without that flag spawns each ``run:`` job as
    its own process, which runs the same block.
    """
    with _STAGE_LOCK:
        root = logging.getLogger()
        saved_level, saved_workers = root.level, os.environ.get(ENV_WORKERS)
        handlers = _stage_handlers(log_file)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(logging.INFO)
        if threads and saved_workers is None:
            os.environ[ENV_WORKERS] = str(threads)
        _quiet_zarr_about_snakemake()
        logging.captureWarnings(True)
        logging.getLogger("isct.stages").info("stage runs in process %d", os.getpid())
        try:
            yield
        finally:
            for handler in handlers:
                root.removeHandler(handler)
                handler.close()
            root.setLevel(saved_level)
            if saved_workers is None:
                os.environ.pop(ENV_WORKERS, None)


def placeholder_figure(path: str | os.PathLike, text: str) -> None:
    """A figure that only says why the analysis it stands for did not run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 1.5))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
