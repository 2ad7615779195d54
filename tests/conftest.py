"""Fixtures shared by several test modules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "data" / "tiny.yaml"


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A clean run of the tiny trial (the whole DAG) in a temporary run directory."""
    workdir = tmp_path_factory.mktemp("trial")
    proc = subprocess.run(
        [sys.executable, "-m", "isct.cli", "run", str(TINY), "--cores", "2"],
        capture_output=True,
        text=True,
        cwd=workdir,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return workdir
