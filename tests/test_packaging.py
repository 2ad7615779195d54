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
