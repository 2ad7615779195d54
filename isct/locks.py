"""Snakemake's directory locks after a hard kill: known stale, then cleared, conservatively.

Snakemake locks its working directory by writing ``.snakemake/locks/<n>.input.lock`` and
``<n>.output.lock`` (the files the run reads and writes) and removes them when it exits. A run
killed hard (SIGKILL, power loss) leaves them, and the next run stops with "Directory cannot
be locked". ``isct run`` therefore keeps a record of each run it starts,
``.snakemake/isct-runs/<id>.json`` — host, pids and start time of isct and of its snakemake
process, and the lock files that snakemake wrote (name, inode, size, mtime) — and holds an
exclusive ``flock`` on the record for the whole run; the snakemake process inherits the open
file, so the kernel releases the lock only when both processes are gone, however they end.

Before the next run, :func:`clear_stale_locks` removes a record's lock files only when all of
these hold:

1. the record was written on this host;
2. its ``flock`` can be taken: no process of that run is alive;
3. no live process on this host has this directory as its working directory and "snakemake"
   in its command line (a run started without isct, or a job of one); a process whose working
   directory cannot be read counts as such a process;
4. each lock file is still the one the record names (same inode, size and mtime), not one a
   later run wrote under the same name.

Lock files no record accounts for are never touched: ``isct run CONFIG -- --unlock`` (Snakemake's
own ``--unlock``) clears them once you know no run is active.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._ahead import AFTER_GO, hold_back, send_go

try:
    import fcntl
except ImportError:  # Windows: no flock, so no run is ever known to be dead
    fcntl = None

__all__ = ["LockReport", "clear_stale_locks", "lock_files", "run_recorded"]

RECORDS = Path(".snakemake") / "isct-runs"
LOCKS = Path(".snakemake") / "locks"
_POLL_S = 0.5


def lock_files(workdir: str | os.PathLike) -> list[Path]:
    """Snakemake's lock files in ``workdir`` (``.snakemake/locks/*.lock``)."""
    return sorted((Path(workdir) / LOCKS).glob("*.lock"))


def _identity(path: Path) -> dict[str, Any] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return {"name": path.name, "inode": st.st_ino, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


@dataclass
class LockReport:
    """What :func:`clear_stale_locks` did.

    Attributes
    ----------
    removed : list of pathlib.Path
        Lock files removed (left by a run no live process holds).
    kept : list of pathlib.Path
        Lock files left in place.
    reasons : list of str
        Why each kept lock file (or record) was not cleared.
    """

    removed: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


def _snakemake_processes_in(workdir: Path) -> list[str]:
    """Live processes on this host that may be a Snakemake run (or one of its jobs) in
    ``workdir``: "snakemake" in the command line and ``workdir`` as working directory, or a
    working directory that cannot be read."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "ppid", "cmdline", "cwd"], ad_value=None):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if proc.pid == os.getpid() or (
            # the Snakemake this process started ahead and holds back (isct run): no run yet
            proc.info["ppid"] == os.getpid() and f"isct._snakemake {AFTER_GO}" in cmdline
        ):
            continue
        if "snakemake" not in cmdline:
            continue
        cwd = proc.info["cwd"]
        if cwd is None:
            found.append(f"pid {proc.pid} (working directory unreadable): {cmdline[:120]}")
        else:
            with contextlib.suppress(OSError):
                if Path(cwd).resolve() == workdir:
                    found.append(f"pid {proc.pid}: {cmdline[:120]}")
    return found


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def clear_stale_locks(workdir: str | os.PathLike) -> LockReport:
    """Remove Snakemake lock files that a dead ``isct run`` in ``workdir`` left behind.

    Parameters
    ----------
    workdir : str or path
        The run directory (Snakemake's ``--directory``).

    Returns
    -------
    LockReport
        The lock files removed and kept, and why each kept one was kept. Only files the
        module docstring's four conditions establish as stale are removed.
    """
    workdir = Path(workdir).resolve()
    report = LockReport()
    present = lock_files(workdir)
    records = sorted((workdir / RECORDS).glob("*.json"))
    if not present and not records:
        return report
    if fcntl is None:
        report.kept = present
        report.reasons.append("no flock on this platform: isct cannot tell a live run")
        return report
    holders = _snakemake_processes_in(workdir) if present else []
    host = socket.gethostname()
    accounted: set[str] = set()
    for path in records:
        try:
            fd = os.open(path, os.O_RDWR)  # writable: NFS emulates flock by fcntl write locks
        except OSError:
            continue
        try:
            if not _try_flock(fd):
                continue  # a live run: its locks are held
            try:
                record = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # being written, or not ours
            if record.get("host") != host:
                report.reasons.append(
                    f"{path.name}: written on host {record.get('host')!r}, not {host!r}"
                )
                continue
            mine = [
                workdir / LOCKS / lock["name"]
                for lock in record.get("locks", [])
                if _identity(workdir / LOCKS / lock["name"]) == lock
            ]
            if mine and holders:
                accounted.update(p.name for p in mine)
                report.reasons.append(
                    "a Snakemake process may be running in this directory: " + "; ".join(holders)
                )
                continue
            for lock in mine:
                lock.unlink(missing_ok=True)
                report.removed.append(lock)
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)
    report.kept = [p for p in lock_files(workdir) if p not in report.removed]
    unexplained = [p.name for p in report.kept if p.name not in accounted]
    if unexplained:
        report.reasons.append(
            f"{', '.join(unexplained)}: written by no run isct knows to be dead (a live run, "
            "a run on another host, or snakemake started without isct)"
        )
    return report


def run_recorded(
    argv: Sequence[str],
    *,
    workdir: str | os.PathLike,
    env: dict[str, str],
    prepare: Callable[[], contextlib.AbstractContextManager[dict[str, Any]]] | None = None,
) -> int:
    """Run ``argv`` (a snakemake command) with a run record in ``workdir`` held for its life.

    The record names this host, this process, the child and the lock files the child writes
    (looked for every 0.5 s while it runs); both processes hold its ``flock``. It is deleted
    when the child exits; after a hard kill it stays and lets :func:`clear_stale_locks` act.
    Ctrl-C reaches the child too (same process group): this waits for Snakemake to stop its
    jobs and remove its locks rather than killing it.

    With ``prepare``, the child is a command that waits for a go line on its stdin
    (``python -m isct._snakemake --after-go ...``): it is started first, so that it imports
    while ``prepare()`` is entered here (the config checked, stale locks cleared, the cluster
    started); the environment variables ``prepare()`` yields are sent with the go line, and
    its context stays open until the child exits. If entering it fails, the child is told to
    stop and exits without running anything.

    Returns
    -------
    int
        The child's exit status.
    """
    workdir = Path(workdir).resolve()
    records = workdir / RECORDS
    fd = None
    if fcntl is not None:
        records.mkdir(parents=True, exist_ok=True)
        run_id = uuid.uuid4().hex
        tmp, path = records / f".{run_id}.tmp", records / f"{run_id}.json"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
    record: dict[str, Any] = {
        "host": socket.gethostname(),
        "isct_pid": os.getpid(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": list(argv),
        "locks": [],
    }

    def write() -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(record, indent=2).encode())

    try:
        with (
            subprocess.Popen(
                list(argv),
                env=env,
                pass_fds=() if fd is None else (fd,),
                stdin=subprocess.PIPE if prepare is not None else None,
                text=True,
            ) as child,
            contextlib.ExitStack() as stack,
        ):
            stdin, child.stdin = child.stdin, None
            extra = _prepared(child, stdin, stack, prepare) if prepare is not None else None
            # the lock files before the child can write any (it waits for the go line)
            before = {p.name: _identity(p) for p in lock_files(workdir)}
            if extra is not None:
                then = extra.pop("then", None)
                record["argv"] += extra.get("args", [])
                send_go(stdin, **extra)
                if then is not None:
                    then()
            if fd is None:
                return _wait(child, lambda: None)

            def record_new_locks() -> None:
                known = {(i["name"], i["inode"]) for i in record["locks"]}
                added = [
                    i
                    for p in lock_files(workdir)
                    if (i := _identity(p))
                    and before.get(p.name) != i
                    and (i["name"], i["inode"]) not in known
                ]
                if added:
                    record["locks"] += added
                    write()

            record["snakemake_pid"] = child.pid
            write()
            os.rename(tmp, path)  # complete before a checker sees it; the flock stays on it
            code = _wait(child, record_new_locks)
        path.unlink(missing_ok=True)
        return code
    finally:
        if fd is not None:
            tmp.unlink(missing_ok=True)
            os.close(fd)


def _prepared(
    child: subprocess.Popen, stdin: Any, stack: contextlib.ExitStack, prepare: Callable
) -> dict[str, Any]:
    """Enter ``prepare()`` for the run and return what it yields; if that fails, close the
    child's stdin without a go line (it exits without running anything) and re-raise."""
    try:
        return dict(stack.enter_context(prepare()))
    except BaseException:
        hold_back(stdin)
        child.wait()
        raise


def _wait(child: subprocess.Popen, every: Callable[[], None]) -> int:
    while True:
        try:
            return child.wait(timeout=_POLL_S)
        except subprocess.TimeoutExpired:
            every()
        except KeyboardInterrupt:
            continue
