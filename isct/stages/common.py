"""What every stage shares (``workflow/rules/common.smk``): the trial and the logging.

A Snakemake script builds the stage's :class:`~isct.trial.Trial` with :func:`trial_of` — the
Snakemake config validated and frozen, the calibrate stage's result applied — and calls the
stage's ``run`` function with it and the paths Snakemake hands it.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..cluster import ENV_WORKERS
from ..trial import Trial

__all__ = ["placeholder_figure", "setup_logging", "trial_of"]


def trial_of(config: Mapping[str, Any], calibration: str | os.PathLike | None = None) -> Trial:
    """The trial of a Snakemake config, with the calibration (``calibration.json``) applied."""
    trial = Trial.from_dict(config, source="<snakemake config>")
    return trial.with_calibration(calibration)


def setup_logging(log_file: str, threads: int | None = None) -> None:
    """Send a stage's logging and warnings to its Snakemake log file (and stderr).

    ``threads`` (the Snakemake job's threads) sizes the embedded LocalCluster unless the
    command line chose the workers or a scheduler already.
    """
    if threads:
        os.environ.setdefault(ENV_WORKERS, str(threads))
    handler = logging.FileHandler(log_file, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    console = logging.StreamHandler()
    console.addFilter(lambda r: r.levelno >= logging.WARNING or r.name.startswith("isct"))
    logging.basicConfig(level=logging.INFO, handlers=[handler, console], force=True)
    # Snakemake marks directory() outputs with this file; zarr rightly ignores it
    warnings.filterwarnings("ignore", message="Object at .snakemake_timestamp")
    logging.captureWarnings(True)


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
