"""The re-run half of ``isct replay``, run as its own process: ``python -m isct.rerun REQUEST``.

``isct replay`` starts this module with ``PYTHONPATH`` set to the bundle's ``source/`` (so the
packages and the model that ran are the bundle's, not the reviewer's) and the interpreter of
the reviewer's environment or of a fresh one built from the bundle's lock. It re-simulates
the requested patients, regenerates the report's tables and writes, into the request's
``out`` folder:

* ``fresh.zarr`` - the re-simulated outputs, dims ``(arm, patient[, ...])``;
* ``tables/<name>.csv`` - :func:`isct.stages.report_tables`;
* ``rerun.json`` - the model and version that ran (and from which file), this platform
  (:func:`isct.environment.platform_record`), the installed versions of the locked
  packages, and why the model was refused, if it was.

It compares nothing: the replaying process does.
"""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path

import numpy as np
import xarray as xr
import zarr

from .environment import platform_record, read_lock
from .jsonio import write_json
from .provenance import package_versions
from .trial import load_config
from .verify import rerun_patients, stored_model


def main(request_path: str) -> int:
    request = json.loads(Path(request_path).read_text())
    results, out = Path(request["results"]), Path(request["out"])
    out.mkdir(parents=True, exist_ok=True)
    trial = load_config(request["config"], workdir=request["run_dir"])
    attrs = zarr.open_group(results / "outcomes.zarr", mode="r").attrs.asdict()
    model = stored_model(attrs, trial)
    record = {
        "model": str(attrs["model"]),
        "model_version": str(attrs["model_version"]),
        "model_ran": model.name,
        "version_ran": str(model.version),
        "model_file": inspect.getsourcefile(type(model)),
        "platform": platform_record(),
        "packages": package_versions(tuple(read_lock(request["lock"]))),
        "python_executable": sys.executable,
        "refused": None,
        "tables": [],
    }
    if record["version_ran"] != record["model_version"]:
        record["refused"] = (
            f"{results / 'outcomes.zarr'}: made with model {record['model']!r} version "
            f"{record['model_version']}; the bundle contains version {record['version_ran']} "
            f"({record['model_file']})"
        )
        write_json(out / "rerun.json", record)
        return 0
    idx = np.asarray(request["positions"], dtype=np.int64)
    _, arms, fresh = rerun_patients(results, idx, trial=trial)
    ds = xr.Dataset(
        {
            key: (("arm", "patient", *[f"{key}_dim{d}" for d in range(2, v.ndim)]), v)
            for key, v in fresh.items()
        },
        coords={"arm": [a["name"] for a in arms], "patient": idx},
    )
    ds.to_zarr(out / "fresh.zarr", mode="w", consolidated=False)
    from .stages.report import report_tables

    (out / "tables").mkdir(exist_ok=True)
    for name, table in report_tables(trial, results).items():
        table.to_csv(out / "tables" / f"{name}.csv", index=False)
        record["tables"].append(name)
    write_json(out / "rerun.json", record)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
