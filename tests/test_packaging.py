"""environment.yml and pyproject.toml must list the same dependencies and lower bounds."""

from __future__ import annotations

import re
import tomllib

import yaml

from isct.config import REPO_ROOT


def _normalise(requirement: str) -> tuple[str, str]:
    name, _, bound = re.match(
        r"^([A-Za-z0-9_.\-\[\]]+)\s*(>=\s*(.+))?$", requirement.strip()
    ).groups()
    return name.split("[")[0].lower().replace("_", "-"), (bound or "").strip()


def test_environment_and_pyproject_agree():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    conda = [
        d for d in env["dependencies"] if isinstance(d, str) and not d.startswith(("python", "pip"))
    ]
    assert dict(map(_normalise, project["dependencies"])) == dict(map(_normalise, conda))
    python_pin = next(
        d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python")
    )
    assert python_pin.replace("python", "") == project["requires-python"]


def test_ruff_lint_and_format_are_clean():
    import subprocess
    import sys
    from pathlib import Path

    ruff = Path(sys.executable).parent / "ruff"
    for args in (["check", "."], ["format", "--check", "."]):
        proc = subprocess.run([ruff, *args], capture_output=True, text=True, cwd=REPO_ROOT)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
