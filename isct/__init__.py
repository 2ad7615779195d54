"""isct: orchestration of in-silico clinical trials (config, Dask runner, zarr stores, provenance, CLI)."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
