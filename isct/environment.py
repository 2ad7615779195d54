"""The environment a trial ran in: a hash-pinned lock, the platform and its CPU features.

``write_lock`` pins every distribution isct needs (the closure of isct's requirements in the
running environment, isct itself excluded: its source travels in the bundle) to the exact
installed version and to the SHA-256 of the file pip installs for it on this platform. The
files are fetched with ``pip download --no-deps --prefer-binary`` into a wheelhouse (kept
between calls; files already there are reused) and hashed as ``pip hash`` does, so the lock
works with ``pip install --no-deps --require-hashes -r lock.txt``. What is hashed is the
file itself (a wheel for this platform and Python, or the sdist where no wheel exists), not
the installed files (a dist-info ``RECORD``): the lock installs exactly those files, and on
a platform whose wheels differ pip refuses it, naming the package (the replay then runs in
the reviewer's environment and the model card's cross-platform tolerances apply).

``platform_record`` describes what bit-for-bit reproducibility depends on besides package
versions: Python, operating system, machine, and the CPU name and features that numba's
compiler (llvmlite) targets.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from .errors import BundleError, LockInstallError
from .provenance import sha256_file

__all__ = [
    "dependency_closure",
    "install_lock",
    "platform_differences",
    "platform_record",
    "read_lock",
    "write_lock",
]

#: The distribution whose requirement closure is locked (and which is itself left out).
ROOT_DIST = "isct"
#: Keys of :func:`platform_record` whose difference rules out bit-for-bit equality.
PLATFORM_KEYS = ("python", "implementation", "system", "machine", "cpu_name", "cpu_features")
PIP_TIMEOUT_S = 1800
_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)\s+--hash=sha256:([0-9a-f]{64})$")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def dependency_closure(root: str = ROOT_DIST) -> dict[str, str]:
    """Installed versions of every distribution ``root`` requires, transitively.

    Requirements whose environment marker does not hold here (other platforms, extras) are
    left out, and so is ``root`` itself.

    Returns
    -------
    dict of str to str
        Normalised distribution name → installed version, sorted by name.
    """
    from packaging.requirements import Requirement

    installed = {_norm(d.metadata["Name"]): d for d in metadata.distributions()}
    seen: dict[str, str] = {}
    todo = [root]
    while todo:
        name = _norm(todo.pop())
        dist = installed.get(name)
        if name in seen or dist is None:
            continue
        seen[name] = dist.version
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    seen.pop(_norm(root), None)
    return dict(sorted(seen.items()))


def _file_pin(path: Path) -> tuple[str, str] | None:
    from packaging.utils import (
        InvalidSdistFilename,
        InvalidWheelFilename,
        parse_sdist_filename,
        parse_wheel_filename,
    )

    try:
        if path.name.endswith(".whl"):
            name, version, *_ = parse_wheel_filename(path.name)
        else:
            name, version = parse_sdist_filename(path.name)
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
    return _norm(name), str(version)


def write_lock(
    path: str | os.PathLike, wheelhouse: str | os.PathLike, pins: dict[str, str] | None = None
) -> dict[str, dict[str, str]]:
    """Write a ``pip install --require-hashes`` lock of the running environment.

    Parameters
    ----------
    path : str or path
        The lock file to write (``name==version --hash=sha256:…`` per line).
    wheelhouse : str or path
        Folder of downloaded files; missing ones are fetched with ``pip download``.
    pins : dict, optional
        Name → version to lock (default :func:`dependency_closure`).

    Returns
    -------
    dict
        Name → ``{"version", "file", "sha256"}``.

    Raises
    ------
    BundleError
        If pip cannot download a pinned version (names the packages and pip's message).
    """
    pins = dependency_closure() if pins is None else pins
    house = Path(wheelhouse)
    house.mkdir(parents=True, exist_ok=True)

    def present() -> dict[tuple[str, str], Path]:
        found: dict[tuple[str, str], Path] = {}
        for f in sorted(house.iterdir()):
            pin = _file_pin(f)
            if pin is not None and (pin not in found or f.name.endswith(".whl")):
                found[pin] = f
        return found

    files = present()
    missing = [f"{n}=={v}" for n, v in pins.items() if (n, v) not in files]
    if missing:
        argv = [sys.executable, "-m", "pip", "download", "--no-deps", "--prefer-binary"]
        proc = subprocess.run(
            [*argv, "--dest", str(house), *missing],
            capture_output=True,
            text=True,
            timeout=PIP_TIMEOUT_S,
        )
        files = present()
        still = [m for m in missing if tuple(m.split("==")) not in files]
        if proc.returncode != 0 or still:
            raise BundleError(
                f"{path}: pip could not download {', '.join(still) or 'the locked files'} "
                f"to hash them:\n{(proc.stderr or proc.stdout)[-1500:]}"
            )
    locked = {
        n: {"version": v, "file": files[n, v].name, "sha256": sha256_file(files[n, v])}
        for n, v in pins.items()
    }
    head = (
        f"# Environment lock written by isct for Python {platform.python_version()} on "
        f"{platform.system()} {platform.machine()}.\n"
        "# Install: pip install --no-deps --require-hashes -r lock.txt\n"
        "# Each hash is the SHA-256 of the file named beside it (pip hash).\n"
    )
    lines = [
        f"{n}=={e['version']} --hash=sha256:{e['sha256']}  # {e['file']}" for n, e in locked.items()
    ]
    Path(path).write_text(head + "\n".join(lines) + "\n")
    return locked


def read_lock(path: str | os.PathLike) -> dict[str, str]:
    """Name → version of every line of a lock; the error names the file and the line."""
    pins: dict[str, str] = {}
    for i, raw in enumerate(Path(path).read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _LINE.match(line)
        if match is None:
            raise BundleError(
                f"{path}, line {i}: expected 'name==version --hash=sha256:<64 hex>', got {raw!r}"
            )
        pins[_norm(match[1])] = match[2]
    return pins


def install_lock(
    lock: str | os.PathLike, venv: str | os.PathLike, *, find_links: str | None = None
) -> Path:
    """A new virtual environment at ``venv`` with exactly the lock's files; its python.

    Runs ``python -m venv`` with this interpreter, then ``pip install --no-deps
    --require-hashes -r LOCK`` (``--find-links`` a wheelhouse when given). pip's own
    configuration (index, proxy, cache) applies. Build dependencies of an sdist in the lock
    are fetched by pip's build isolation and are not hash-checked (a limit of pip).

    Raises
    ------
    LockInstallError
        Naming the lock file and the tail of pip's message (the package it failed on).
    """
    venv = Path(venv)
    read_lock(lock)  # a malformed line is named before anything is installed
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    argv = [str(python), "-m", "pip", "install", "--no-deps", "--require-hashes"]
    argv += ["--disable-pip-version-check", "-r", str(lock)]
    if find_links:
        argv += ["--find-links", str(find_links)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        raise LockInstallError(
            f"{lock}: the environment lock cannot be installed into {venv} "
            f"(pip exited {proc.returncode}):\n" + "\n".join(lines[-12:])
        )
    return python


def platform_record() -> dict[str, Any]:
    """Python, operating system, machine and CPU (name, features) of this process."""
    record: dict[str, Any] = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "system": platform.system(),
        "release": platform.release(),
        "machine": platform.machine(),
        "libc": "-".join(platform.libc_ver()),
        "cpu_name": None,
        "cpu_features": None,
    }
    try:  # what numba compiles for: the host CPU as LLVM sees it
        import llvmlite.binding as llvm

        record["cpu_name"] = llvm.get_host_cpu_name()
        feats = llvm.get_host_cpu_features()
        record["cpu_features"] = sorted(f[1:] for f in feats.flatten().split(",") if f[:1] == "+")
        record["cpu_source"] = "llvmlite"
    except (ImportError, RuntimeError, AttributeError):
        record["cpu_source"] = None
    return record


def platform_differences(recorded: dict[str, Any], here: dict[str, Any]) -> list[str]:
    """The keys of :data:`PLATFORM_KEYS` that differ, as ``key: recorded -> here`` lines."""
    out = []
    for key in PLATFORM_KEYS:
        if recorded.get(key) != here.get(key):
            a, b = recorded.get(key), here.get(key)
            if isinstance(a, list) and isinstance(b, list):
                gone, new = sorted(set(a) - set(b)), sorted(set(b) - set(a))
                out.append(f"{key}: missing here {gone[:8]}, only here {new[:8]}")
            else:
                out.append(f"{key}: {a} -> {b}")
    return out
