"""Dask workers as batch jobs (SLURM, PBS) through dask-jobqueue, for one run.

A ``kind: slurm | pbs`` cluster profile (``config/clusters/*.yaml``) names the batch system's
options (``options``, passed to ``dask_jobqueue.SLURMCluster`` / ``PBSCluster``) and how many
jobs to run: ``jobs: N`` (a fixed number, kept: a job that ends or is cancelled is replaced)
or ``adapt: {minimum, maximum}`` (jobs grow under load and shrink when idle). What
:func:`running_cluster` adds to dask-jobqueue:

* **One clear error for bad input.** A submission the batch system refuses (unknown
  partition, refused account, a request no node can meet), a job it keeps pending for a
  reason that will not pass (an account the partition does not allow), and no worker after
  ``pending_timeout`` seconds each raise one :class:`~isct.errors.ClusterProfileError` that
  names the profile and its key, after every job submitted was cancelled.
* **No orphaned jobs.** Jobs carry a name unique to the run (``isct-<8 hex>``) and the run
  keeps a record of them in ``<run dir>/.snakemake/isct-jobs/<name>.json`` (host, process,
  job ids). A run that ends cancels its jobs and deletes the record; the record of a run
  killed hard stays, and the next run in that directory cancels its jobs
  (:func:`cancel_stale_jobs`). Workers also stop by themselves ``death_timeout`` seconds
  (dask-jobqueue's default 60) after their scheduler is gone.
* **The worker environment of the submitter.** Workers run the submitting interpreter
  (dask-jobqueue's default ``python``), single-threaded (``OMP_NUM_THREADS=1`` and friends in
  the job script), with the submitter's ``PYTHONPATH``; job logs go to ``<run dir>/logs/cluster``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .errors import ClusterProfileError

__all__ = [
    "DEFAULT_PENDING_TIMEOUT_S",
    "JOB_RECORDS",
    "KINDS",
    "SINGLE_THREAD_ENV",
    "build_cluster",
    "cancel_stale_jobs",
    "running_cluster",
]

#: Profile kind -> dask-jobqueue cluster class.
KINDS = {"slurm": "SLURMCluster", "pbs": "PBSCluster"}
#: Seconds a run waits for its first worker job to start before giving up.
DEFAULT_PENDING_TIMEOUT_S = 600.0
JOB_RECORDS = Path(".snakemake") / "isct-jobs"
SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
}
_KEEP_EVERY_S = 5.0
_POLL_S = 1.0


def _prologue() -> list[str]:
    lines = [f"export {k}={v}" for k, v in SINGLE_THREAD_ENV.items()]
    if os.environ.get("PYTHONPATH"):  # PBS does not pass the submitter's environment on
        lines.append(f"export PYTHONPATH={shlex.quote(os.environ['PYTHONPATH'])}")
    return lines


def build_cluster(
    profile: Path,
    spec: Mapping[str, Any],
    *,
    job_name: str | None = None,
    log_directory: str | os.PathLike | None = None,
    submissions: _Submissions | None = None,
) -> Any:
    """The dask-jobqueue cluster a ``kind: slurm | pbs`` profile describes (no job started).

    ``options`` go to the cluster class; isct's defaults fill what they leave out: one
    worker process per core (``processes = cores``), the single-thread environment and the
    submitter's ``PYTHONPATH`` in the job script, a dashboard on a free port.

    Raises
    ------
    ClusterProfileError
        If ``options`` holds a keyword the cluster class rejects.
    """
    import dask_jobqueue

    cluster_cls = getattr(dask_jobqueue, KINDS[spec["kind"]])
    options: dict[str, Any] = dict(spec.get("options") or {})
    options.setdefault("processes", options.get("cores", 1))
    options.setdefault("job_script_prologue", _prologue())
    options.setdefault("scheduler_options", {"dashboard_address": ":0"})
    if job_name is not None:
        options["job_name"] = job_name
    if log_directory is not None:
        options.setdefault("log_directory", str(log_directory))
    if submissions is not None:
        options["job_cls"] = _recording_job_class(cluster_cls.job_cls, submissions)
    try:
        return cluster_cls(**options)
    except (TypeError, ValueError) as err:
        raise ClusterProfileError(
            f"{profile}: key 'options' is not accepted by {cluster_cls.__name__}: {err}"
        ) from err


class _Submissions:
    """Job ids submitted and submission errors (written from the cluster's event loop)."""

    def __init__(self, record: Path | None, header: dict[str, Any]) -> None:
        self.ids: list[str] = []
        self.errors: list[str] = []
        self._record = record
        self._header = header
        self._lock = threading.Lock()
        self._write()

    def _write(self) -> None:
        if self._record is None:
            return
        self._record.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._record.with_suffix(".tmp")
        tmp.write_text(json.dumps({**self._header, "job_ids": self.ids}, indent=2))
        tmp.replace(self._record)

    def submitted(self, job_id: str) -> None:
        with self._lock:
            self.ids.append(job_id)
            self._write()

    def failed(self, message: str) -> None:
        with self._lock:
            self.errors.append(message)

    def remove_record(self) -> None:
        if self._record is not None:
            self._record.unlink(missing_ok=True)


def _recording_job_class(base: type, submissions: _Submissions) -> type:
    """``base`` (a dask-jobqueue Job class) that reports each job id and submission error."""

    class RecordingJob(base):
        async def _submit_job(self, script_filename):
            try:
                out = await super()._submit_job(script_filename)
            except RuntimeError as err:  # the submit command failed: its stderr says why
                submissions.failed(_stderr_of(str(err)))
                raise
            submissions.submitted(self._job_id_from_submit_output(out))
            return out

    RecordingJob.__name__ = RecordingJob.__qualname__ = base.__name__
    return RecordingJob


def _stderr_of(message: str) -> str:
    """The submit command's stderr inside dask-jobqueue's error message, on one line."""
    text = message.split("stderr:", 1)[-1]
    return " ".join(text.split()) or " ".join(message.split())


def _key_for(text: str) -> str:
    """The profile key a batch system's complaint is about."""
    low = text.lower()
    for words, key in (
        (("account",), "options.account"),
        (("partition", "queue"), "options.queue"),
        (("memory", "node configuration", "cpu"), "options.cores / options.memory"),
        (("time limit", "walltime"), "options.walltime"),
        (("qos",), "options.job_extra_directives"),
    ):
        if any(w in low for w in words):
            return key
    return "options"


def _queue_reasons(kind: str, ids: list[str]) -> list[str]:
    """``<id> <state> <reason>`` of each job still queued (SLURM: squeue; PBS: not read)."""
    if kind != "slurm" or not ids:
        return []
    proc = subprocess.run(
        ["squeue", "-h", "-j", ",".join(ids), "-o", "%i %T %r"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return [line.strip() for line in proc.stdout.splitlines() if line.strip()]


def _cancel(kind: str, cancel_command: str, ids: list[str], job_name: str | None) -> None:
    """Cancel jobs by id (and, on SLURM, by the run's unique job name); gone jobs are fine."""
    commands = [[*shlex.split(cancel_command), *ids]] if ids else []
    if kind == "slurm" and job_name:
        commands.append(["scancel", f"--name={job_name}"])
    for command in commands:
        try:
            subprocess.run(command, capture_output=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as err:  # no such command here
            print(f"isct: could not cancel jobs with {shlex.join(command)}: {err}", file=sys.stderr)


def _process_start(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def cancel_stale_jobs(workdir: str | os.PathLike) -> list[str]:
    """Cancel the batch jobs of runs in ``workdir`` that were killed before they could.

    A record (``.snakemake/isct-jobs/*.json``) written on this host by a process that is
    gone (or whose pid now belongs to a later process) is stale: its jobs are cancelled
    and the record deleted. Records of live runs and of other hosts are left alone.

    Returns
    -------
    list of str
        ``<job name> (jobs <ids>)`` for each stale record acted on.
    """
    done = []
    for path in sorted((Path(workdir) / JOB_RECORDS).glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if record.get("host") != socket.gethostname():
            continue
        started = _process_start(int(record.get("pid", -1)))
        if started is not None and abs(started - float(record.get("pid_started", 0))) < 1:
            continue  # that run is alive
        ids = [str(i) for i in record.get("job_ids", [])]
        _cancel(record.get("kind", ""), record.get("cancel_command", "scancel"), ids,
                record.get("job_name"))  # fmt: skip
        path.unlink(missing_ok=True)
        done.append(f"{record.get('job_name')} (jobs {', '.join(ids) or 'none submitted'})")
    return done


def _cancelled(subs: _Submissions) -> str:
    n = len(subs.ids)
    if not n:
        return "no job was submitted"
    return f"the {n} job(s) submitted ({', '.join(subs.ids)}) are cancelled"


def _await_first_worker(
    cluster, profile: Path, spec, subs: _Submissions, timeout: float, log_dir: Path
):
    kind = spec["kind"]
    deadline = time.monotonic() + timeout
    while True:
        if cluster.scheduler_info.get("workers"):
            return
        if subs.errors:
            reason = subs.errors[0]
            key = _key_for(reason)
            raise ClusterProfileError(
                f"{profile}: key '{key}': the batch system refused the worker job: {reason}; "
                f"{_cancelled(subs)}"
            )
        reasons = _queue_reasons(kind, list(subs.ids))
        hopeless = [r for r in reasons if "account" in r.lower()]
        if hopeless:
            raise ClusterProfileError(
                f"{profile}: key 'options.account' "
                f"({(spec.get('options') or {}).get('account')!r}): the batch system will not "
                f"run the worker jobs: {'; '.join(hopeless)}; {_cancelled(subs)}"
            )
        if time.monotonic() > deadline:
            queued = "; ".join(reasons) or "none in the queue"
            if any(r.split()[1:2] == ["RUNNING"] for r in reasons) or (subs.ids and not reasons):
                raise ClusterProfileError(
                    f"{profile}: key 'options': worker jobs ran ({queued}) but no worker "
                    f"reached the scheduler within pending_timeout ({timeout:g} s); the job "
                    f"logs in {log_dir} say why (options.interface: a network the nodes "
                    f"share with this host; options.python: a Python with isct on the "
                    f"nodes); {_cancelled(subs)}"
                )
            raise ClusterProfileError(
                f"{profile}: key 'pending_timeout' ({timeout:g} s): no worker job started in "
                f"time (jobs {', '.join(subs.ids) or 'none submitted'}: {queued}). Raise "
                "pending_timeout if the queue is busy, or ask for less (options.cores, "
                f"options.memory, options.walltime); {_cancelled(subs)}"
            )
        time.sleep(_POLL_S)


def _keep_jobs(cluster, stop: threading.Event) -> None:
    """Replace jobs that ended (cancelled, out of walltime) while the run lasts.

    dask-jobqueue forgets a lost worker's job after ``lost-worker-timeout`` but submits a new
    one only when asked to scale; reconciling the cluster with its own worker spec now and
    then brings the planned number of jobs back.
    """
    while not stop.wait(_KEEP_EVERY_S):
        with contextlib.suppress(Exception):  # a closing cluster
            cluster.loop.add_callback(cluster._correct_state)


@contextlib.contextmanager
def running_cluster(
    profile: Path, spec: Mapping[str, Any], workdir: str | os.PathLike
) -> Iterator[Any]:
    """A dask-jobqueue cluster with its worker jobs submitted and the first one running.

    Parameters
    ----------
    profile : path
        The cluster profile (named in errors).
    spec : mapping
        The profile, validated by :func:`isct.cluster.read_profile`.
    workdir : path
        The run directory: job records and job logs (``logs/cluster``).

    Raises
    ------
    ClusterProfileError
        A refused submission, a refused account or no worker after ``pending_timeout``
        seconds; the jobs submitted are cancelled first.
    """
    workdir = Path(workdir).resolve()
    stale = cancel_stale_jobs(workdir)
    if stale:
        print(
            "isct: cancelled the batch jobs of a run killed hard in this directory: "
            + "; ".join(stale),
            file=sys.stderr,
        )
    prefix = (spec.get("options") or {}).get("job_name") or "isct"
    job_name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    import dask_jobqueue

    cancel_command = getattr(dask_jobqueue, KINDS[spec["kind"]]).job_cls.cancel_command
    subs = _Submissions(
        workdir / JOB_RECORDS / f"{job_name}.json",
        {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "pid_started": _process_start(os.getpid()),
            "kind": spec["kind"],
            "job_name": job_name,
            "cancel_command": cancel_command,
            "profile": str(profile),
        },
    )
    stop = threading.Event()
    cluster = None
    try:
        log_dir = Path(
            (spec.get("options") or {}).get("log_directory") or workdir / "logs" / "cluster"
        )
        cluster = build_cluster(
            profile,
            spec,
            job_name=job_name,
            log_directory=log_dir,
            submissions=subs,
        )
        adapt = spec.get("adapt")
        if adapt:
            cluster.scale(jobs=max(1, int(adapt["minimum"])))
        else:
            cluster.scale(jobs=int(spec.get("jobs", 1)))
        timeout = float(spec.get("pending_timeout", DEFAULT_PENDING_TIMEOUT_S))
        _await_first_worker(cluster, profile, spec, subs, timeout, log_dir)
        if adapt:
            extra = {k: v for k, v in adapt.items() if k not in ("minimum", "maximum")}
            cluster.adapt(
                minimum_jobs=int(adapt["minimum"]), maximum_jobs=int(adapt["maximum"]), **extra
            )
        threading.Thread(target=_keep_jobs, args=(cluster, stop), daemon=True).start()
        yield cluster
    finally:
        stop.set()
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close()
        _cancel(spec["kind"], cancel_command, list(subs.ids), job_name)
        subs.remove_record()
