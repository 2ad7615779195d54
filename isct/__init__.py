"""isct: orchestration of in-silico clinical trials.

Trial config (:func:`load_config`), the Dask simulation engine (:func:`simulate`), cluster
clients (:func:`open_client`), provenance and the ``isct`` command line.

Examples
--------
>>> import isct
>>> ds = isct.simulate("results/t/cohort.zarr", "tavr",
...                    [{"name": "be", "device": {"family": "balloon_expandable"}}],
...                    "results/t/outcomes.zarr")  # doctest: +SKIP
"""

from __future__ import annotations

__version__ = "0.1.0"

from .cluster import open_client
from .config import load_config
from .engine import expand_arms, simulate
from .errors import ConfigError, IsctError, SimulationIncompleteError, StoreMismatchError

__all__ = [
    "ConfigError",
    "IsctError",
    "SimulationIncompleteError",
    "StoreMismatchError",
    "__version__",
    "expand_arms",
    "load_config",
    "open_client",
    "simulate",
]
