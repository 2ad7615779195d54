"""isct: orchestration of in-silico clinical trials.

The trial (:func:`load_config` → :class:`Trial`), the Dask simulation engine
(:func:`simulate`), cluster clients (:func:`open_client`), the workflow's stages
(:mod:`isct.stages`), provenance and the ``isct`` command line. isct knows no device: the
model, its arms and everything device-specific come from the trial config.

Examples
--------
>>> import isct
>>> trial = isct.load_config("my_trial.yaml")  # doctest: +SKIP
>>> ds = isct.simulate("results/t/cohort.zarr", trial.model, trial.arms,
...                    "results/t/outcomes.zarr")  # doctest: +SKIP
"""

from __future__ import annotations

__version__ = "0.1.0"

from .cluster import open_client
from .engine import expand_arms, simulate
from .errors import ConfigError, IsctError, SimulationIncompleteError, StoreMismatchError
from .trial import Trial, load_config

__all__ = [
    "ConfigError",
    "IsctError",
    "SimulationIncompleteError",
    "StoreMismatchError",
    "Trial",
    "__version__",
    "expand_arms",
    "load_config",
    "open_client",
    "simulate",
]
