"""The README's model example runs as written."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np

from models import STATUS, get_model, run_batch

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_readme_model_example(tmp_path, monkeypatch):
    readme = (REPO_ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    code = "\n".join(line[2:] if line.startswith("  ") else line for line in code.splitlines())
    package = tmp_path / "my_package"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "valves.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    model = get_model("my_package.valves:MyValve")
    out = run_batch(
        model,
        {"svi_ml_m2": np.array([40.0, 500.0]), "bsa_m2": np.array([2.0, 2.0])},
        {"eoa_cm2": 1.4},
        {},
    )
    q = 40.0 * 2.0 / 0.3 * 1e-6
    assert out["mean_gradient_mmhg"][0] == 0.5 * 1050 * (q / 1.4e-4) ** 2 / 133.322
    assert out["status"].tolist() == [STATUS["ok"], STATUS["invalid_input"]]
    sys.modules.pop("my_package.valves", None)
    sys.modules.pop("my_package", None)
