"""Dask clients: an embedded LocalCluster, an existing scheduler, or a dask-jobqueue cluster.

The machine is never part of a trial config. It comes from the command line
(``isct run --scheduler ADDRESS`` / ``--cluster-profile FILE`` / ``--workers N``), which sets
the environment variables read by :func:`client_from_env`, so Snakemake rules see it too.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

__all__ = [
    "ENV_PROFILE",
    "ENV_SCHEDULER",
    "ENV_WORKERS",
    "local_cluster",
    "client_from_env",
    "jobqueue_cluster",
    "open_client",
]

ENV_SCHEDULER = "ISCT_SCHEDULER"
ENV_PROFILE = "ISCT_CLUSTER_PROFILE"
ENV_WORKERS = "ISCT_WORKERS"

_JOBQUEUE_KINDS = {"slurm": "SLURMCluster", "pbs": "PBSCluster"}
_SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
}


def local_cluster(n_workers: int | None):
    """An embedded LocalCluster of ``n_workers`` single-threaded worker processes (default:
    one per core)."""
    from distributed import LocalCluster

    n = n_workers or max(1, os.cpu_count() or 1)
    # One thread per worker process: numeric models run single-threaded, in parallel by process.
    for key, value in _SINGLE_THREAD_ENV.items():
        os.environ.setdefault(key, value)
    return LocalCluster(
        n_workers=n,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=logging.ERROR,
    )


def _read_profile(profile: Path) -> dict[str, Any]:
    try:
        spec = yaml.safe_load(profile.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{profile}: cannot read cluster profile ({err})") from err
    kinds = sorted([*_JOBQUEUE_KINDS, "local", "address"])
    if not isinstance(spec, dict) or spec.get("kind") not in kinds:
        raise ConfigError(f"{profile}: key 'kind' must be one of {kinds}")
    return spec


def jobqueue_cluster(profile: str | os.PathLike) -> Any:
    """The dask-jobqueue cluster a ``kind: slurm | pbs`` profile describes (no jobs started).

    Worker processes are single-threaded (``processes = cores`` unless the profile says
    otherwise) and their job script exports ``OMP_NUM_THREADS=1`` and friends.

    Raises
    ------
    ConfigError
        If the profile is unreadable, of another kind, or has options the cluster rejects.
    """
    profile = Path(profile)
    spec = _read_profile(profile)
    kind = spec["kind"]
    if kind not in _JOBQUEUE_KINDS:
        raise ConfigError(
            f"{profile}: kind {kind!r} is not a job-queue cluster; allowed: {sorted(_JOBQUEUE_KINDS)}"
        )
    import dask_jobqueue

    cluster_cls = getattr(dask_jobqueue, _JOBQUEUE_KINDS[kind])
    options: dict[str, Any] = dict(spec.get("options", {}))
    options.setdefault("processes", options.get("cores", 1))
    options.setdefault(
        "job_script_prologue", [f"export {k}={v}" for k, v in _SINGLE_THREAD_ENV.items()]
    )
    try:
        return cluster_cls(**options)
    except (TypeError, ValueError) as err:
        raise ConfigError(
            f"{profile}: key 'options' is not accepted by {cluster_cls.__name__}: {err}"
        ) from err


def _cluster_from_profile(profile: Path) -> tuple[Any, str | None]:
    spec = _read_profile(profile)
    kind = spec["kind"]
    if kind == "local":
        return local_cluster(spec.get("n_workers")), None
    if kind == "address":
        if "address" not in spec:
            raise ConfigError(f"{profile}: kind 'address' needs key 'address' (tcp://host:port)")
        return None, spec["address"]
    cluster = jobqueue_cluster(profile)
    cluster.scale(jobs=int(spec.get("jobs", 1)))
    return cluster, None


@contextlib.contextmanager
def open_client(
    scheduler: str | None = None,
    *,
    profile: str | os.PathLike | None = None,
    n_workers: int | None = None,
) -> Iterator[Any]:
    """Yield a ``distributed.Client``; close what was started here on exit.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``). Takes precedence.
    profile : path, optional
        YAML cluster profile (``kind: local | address | slurm | pbs``; see ``config/clusters/``).
    n_workers : int, optional
        Worker processes of the embedded LocalCluster (default: one per core).
    """
    from distributed import Client

    cluster = None
    address = scheduler
    if address is None and profile is not None:
        cluster, address = _cluster_from_profile(Path(profile))
    if address is None and cluster is None:
        cluster = local_cluster(n_workers)
    client = Client(address) if address is not None else Client(cluster)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def client_from_env() -> contextlib.AbstractContextManager[Any]:
    """:func:`open_client` configured from ``ISCT_SCHEDULER``/``ISCT_CLUSTER_PROFILE``/``ISCT_WORKERS``."""
    workers = os.environ.get(ENV_WORKERS)
    return open_client(
        os.environ.get(ENV_SCHEDULER) or None,
        profile=os.environ.get(ENV_PROFILE) or None,
        n_workers=int(workers) if workers else None,
    )
