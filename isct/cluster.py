"""Dask clients: an embedded LocalCluster, an existing scheduler, or a dask-jobqueue cluster.

The machine is never part of a trial config. It comes from the command line
(``isct run --scheduler ADDRESS`` / ``--cluster-profile FILE`` / ``--workers N``), which sets
the environment variables read by :func:`client_from_env`, so Snakemake rules see it too.
Cluster profiles (``config/clusters/*.yaml``) are read and checked here
(:func:`read_profile`); SLURM and PBS workers are started, watched and cancelled by
:mod:`isct.jobqueue`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from .errors import ClusterProfileError
from .jobqueue import KINDS, SINGLE_THREAD_ENV, build_cluster, running_cluster

__all__ = [
    "ENV_PROFILE",
    "ENV_SCHEDULER",
    "ENV_WORKERS",
    "client_from_env",
    "jobqueue_cluster",
    "local_cluster",
    "open_client",
    "profile_cluster",
    "read_profile",
    "single_threaded_numerics",
]

ENV_SCHEDULER = "ISCT_SCHEDULER"
ENV_PROFILE = "ISCT_CLUSTER_PROFILE"
ENV_WORKERS = "ISCT_WORKERS"

#: The keys each kind of profile may hold.
_PROFILE_KEYS = {
    "local": {"kind", "n_workers"},
    "address": {"kind", "address"},
    **dict.fromkeys(KINDS, {"kind", "jobs", "adapt", "pending_timeout", "options"}),
}
_ADAPT_KEYS = {"minimum", "maximum", "interval", "wait_count", "target_duration"}


def local_cluster(n_workers: int | None, *, start: bool = True):
    """An embedded LocalCluster of ``n_workers`` single-threaded worker processes (default:
    one per core).

    With ``start=False`` it returns as soon as the scheduler listens, with no worker yet:
    the caller starts them with ``cluster.scale(n)`` when it wants them (``isct run`` once
    Snakemake goes; tasks wait for workers to join).
    """
    from distributed import LocalCluster

    n = n_workers or max(1, os.cpu_count() or 1)
    # One thread per worker process: numeric models run single-threaded, in parallel by process.
    _single_thread_env()
    return LocalCluster(
        n_workers=n if start else 0,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=logging.ERROR,
    )


def _single_thread_env() -> None:
    """BLAS, OpenMP and numba of the libraries loaded (and processes started) from now on:
    one thread each, unless the user set the variable."""
    for key, value in SINGLE_THREAD_ENV.items():
        os.environ.setdefault(key, value)


def single_threaded_numerics() -> None:
    """BLAS and OpenMP of this process on one thread each, now and for libraries loaded later.

    A multithreaded BLAS splits a product's sums among its threads, so its last bits depend on
    the thread count (the machine's cores) and, when Python threads call it at once (the
    stages that run together in one process, calibration's model forms), on which call got
    the thread pool: results would differ between machines and between runs. The trial's
    own computing is small next to the model runs (on the workers, one thread each as well),
    and one thread makes it the same everywhere. Set by every ``isct`` command and every
    stage; variables the user set are kept for libraries loaded later.
    """
    from threadpoolctl import threadpool_limits

    _single_thread_env()
    threadpool_limits(limits=1)


def _positive_int(profile: Path, key: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ClusterProfileError(
            f"{profile}: key '{key}' must be an integer >= {low}, got {value!r}"
        )
    return value


def read_profile(profile: str | os.PathLike) -> dict[str, Any]:
    """A cluster profile, checked: ``kind`` and the keys of that kind.

    ``kind: local`` (``n_workers``), ``kind: address`` (``address``), ``kind: slurm | pbs``
    (``options`` for dask-jobqueue; ``jobs: N`` or ``adapt: {minimum, maximum[, interval,
    wait_count, target_duration]}``; ``pending_timeout`` in seconds). See
    ``config/clusters/*.yaml``.

    Raises
    ------
    ClusterProfileError
        Naming the file, the key and what is allowed.
    """
    profile = Path(profile)
    try:
        spec = yaml.safe_load(profile.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ClusterProfileError(f"{profile}: cannot read cluster profile ({err})") from err
    kinds = sorted(_PROFILE_KEYS)
    if not isinstance(spec, dict) or spec.get("kind") not in kinds:
        raise ClusterProfileError(f"{profile}: key 'kind' must be one of {kinds}")
    allowed = _PROFILE_KEYS[spec["kind"]]
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ClusterProfileError(
            f"{profile}: key {unknown[0]!r} is not allowed in a kind {spec['kind']!r} profile; "
            f"allowed: {sorted(allowed)}"
        )
    if spec["kind"] == "address" and "address" not in spec:
        raise ClusterProfileError(
            f"{profile}: kind 'address' needs key 'address' (tcp://host:port)"
        )
    if "n_workers" in spec:
        _positive_int(profile, "n_workers", spec["n_workers"])
    if "jobs" in spec:
        _positive_int(profile, "jobs", spec["jobs"])
    if "jobs" in spec and "adapt" in spec:
        raise ClusterProfileError(
            f"{profile}: keys 'jobs' and 'adapt' exclude each other: a fixed number of jobs, "
            "or adapt: {minimum, maximum}"
        )
    if "adapt" in spec:
        adapt = spec["adapt"]
        if not isinstance(adapt, dict) or not {"minimum", "maximum"} <= set(adapt):
            raise ClusterProfileError(
                f"{profile}: key 'adapt' needs 'minimum' and 'maximum' (jobs)"
            )
        unknown = sorted(set(adapt) - _ADAPT_KEYS)
        if unknown:
            raise ClusterProfileError(
                f"{profile}: key 'adapt.{unknown[0]}' is not allowed; allowed: {sorted(_ADAPT_KEYS)}"
            )
        low = _positive_int(profile, "adapt.minimum", adapt["minimum"], low=0)
        _positive_int(profile, "adapt.maximum", adapt["maximum"], low=max(1, low))
    if "pending_timeout" in spec:
        value = spec["pending_timeout"]
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ClusterProfileError(
                f"{profile}: key 'pending_timeout' must be a number of seconds > 0, got {value!r}"
            )
    if "options" in spec and not isinstance(spec["options"], dict):
        raise ClusterProfileError(
            f"{profile}: key 'options' must be a mapping of {spec['kind']} options"
        )
    return spec


def jobqueue_cluster(profile: str | os.PathLike) -> Any:
    """The dask-jobqueue cluster a ``kind: slurm | pbs`` profile describes (no jobs started).

    Worker processes are single-threaded (``processes = cores`` unless the profile says
    otherwise) and their job script exports ``OMP_NUM_THREADS=1`` and friends. To run jobs,
    use :func:`open_client` (or ``isct run --cluster-profile``), which also waits for them,
    replaces lost ones and cancels them at the end (:mod:`isct.jobqueue`).

    Raises
    ------
    ClusterProfileError
        If the profile is unreadable, of another kind, or has options the cluster rejects.
    """
    profile = Path(profile)
    spec = read_profile(profile)
    if spec["kind"] not in KINDS:
        raise ClusterProfileError(
            f"{profile}: kind {spec['kind']!r} is not a job-queue cluster; allowed: {sorted(KINDS)}"
        )
    return build_cluster(profile, spec)


@contextlib.contextmanager
def profile_cluster(
    profile: str | os.PathLike, workdir: str | os.PathLike = "."
) -> Iterator[tuple[Any, str | None]]:
    """``(cluster, address)`` of a profile, started; what was started is closed on exit.

    ``kind: address`` gives ``(None, address)``; the other kinds a running cluster and None.
    Job-queue clusters are started by :func:`isct.jobqueue.running_cluster` with ``workdir``
    as the run directory.
    """
    profile = Path(profile)
    spec = read_profile(profile)
    kind = spec["kind"]
    if kind == "address":
        yield None, spec["address"]
    elif kind == "local":
        with local_cluster(spec.get("n_workers")) as cluster:
            yield cluster, None
    else:
        with running_cluster(profile, spec, workdir) as cluster:
            yield cluster, None


@contextlib.contextmanager
def open_client(
    scheduler: str | None = None,
    *,
    profile: str | os.PathLike | None = None,
    n_workers: int | None = None,
    set_as_default: bool = True,
) -> Iterator[Any]:
    """Yield a ``distributed.Client``; close what was started here on exit.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``). Takes precedence.
    profile : path, optional
        YAML cluster profile (``kind: local | address | slurm | pbs``; see ``config/clusters/``).
        A job-queue profile's jobs run with the working directory as run directory.
    n_workers : int, optional
        Worker processes of the embedded LocalCluster (default: one per core).
    set_as_default : bool
        Make the client dask's default scheduler while it is open (``distributed.Client``'s
        own option).
    """
    from distributed import Client

    with contextlib.ExitStack() as stack:
        cluster, address = None, scheduler
        if address is None and profile is not None:
            cluster, address = stack.enter_context(profile_cluster(profile))
        if address is None and cluster is None:
            cluster = stack.enter_context(local_cluster(n_workers))
        target = address if address is not None else cluster
        client = stack.enter_context(Client(target, set_as_default=set_as_default))
        yield client


def client_from_env() -> contextlib.AbstractContextManager[Any]:
    """:func:`open_client` configured from ``ISCT_SCHEDULER``/``ISCT_CLUSTER_PROFILE``/``ISCT_WORKERS``.

    The client is handed to the engine explicitly and is not made dask's default: stages
    running at once in one process each open one, and a default set and put back by clients
    that overlap would leave dask pointing at a closed one."""
    workers = os.environ.get(ENV_WORKERS)
    return open_client(
        os.environ.get(ENV_SCHEDULER) or None,
        profile=os.environ.get(ENV_PROFILE) or None,
        n_workers=int(workers) if workers else None,
        set_as_default=False,
    )
