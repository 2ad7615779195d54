"""``isct replay``: a reviewer re-runs a signed submission bundle and checks it.

In an empty directory, :func:`replay`

1. unpacks the bundle and checks its signature and every file's hash
   (:func:`isct.bundle.open_bundle`), then the manifest's hashes against the bundled files;
2. checks the per-patient hash tree: its root is the one the manifest recorded and the
   report prints, and every sampled patient's leaf, recomputed from the stores, leads to it;
3. with ``fresh_env`` builds a virtual environment from the bundle's lock;
4. re-runs the sampled patients (or all) and regenerates the report's tables in a separate
   process (:mod:`isct.rerun`) whose packages and model are the bundle's;
5. compares: bit for bit where the platform and package versions match the recorded ones,
   else within the model card's ``reproducibility.cross_platform`` tolerances (the summary
   says which applied and why); tables by their data.

A bundle that fails a check of integrity (a changed byte, a bad signature, a model version
the bundle does not contain, a lock that cannot be installed) raises an error naming the
file, patient or key; values that differ are listed in the summary (``replay.json``,
``replay.html``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
import zarr

from .bundle import LOCK, MERKLE, PLATFORM, Bundle, open_bundle
from .environment import install_lock, platform_differences, read_lock
from .errors import BundleError, IsctError
from .jsonio import plain, write_json
from .merkle import merkle_proofs, merkle_root, patient_leaves, verify_proof
from .provenance import MANIFEST_NAME, check_manifest
from .verify import sample_positions, values_match

__all__ = ["TABLES", "ReplayResult", "replay", "write_summary"]

#: The report's tables that are regenerated and compared (``evidence/<name>.csv``).
TABLES = (
    "answer_by_arm",
    "answer_paired",
    "populations_by_arm",
    "populations_comparison",
    "planning",
)
RERUN_TIMEOUT_S = 3600
MAX_ROWS = 200


@dataclass
class ReplayResult:
    """What a replay checked and found (``to_dict`` is ``replay.json``)."""

    bundle: str
    trial: str | None
    error: str | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)
    comparison: str = "bit for bit"
    comparison_reason: str = ""
    tolerance: dict[str, Any] | None = None
    platform_differences: list[str] = field(default_factory=list)
    patients: list[int] = field(default_factory=list)
    arms: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    differences: list[dict[str, Any]] = field(default_factory=list)
    tables: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None and not self.differences and all(t["match"] for t in self.tables)

    def to_dict(self) -> dict[str, Any]:
        return plain({**asdict(self), "ok": self.ok}, nan=None)


def _check(result: ReplayResult, name: str, detail: str) -> None:
    result.checks.append({"check": name, "passed": True, "detail": detail})


def _manifest_check(bundle: Bundle) -> int:
    entries = bundle.index["entries"]

    def locate(label: str, _recorded: str) -> Path | None:
        return bundle.root / entries[label] if label in entries else None

    mismatches, unchecked = check_manifest(bundle.results / MANIFEST_NAME, locate)
    if unchecked:
        raise BundleError(
            f"{bundle.path}: manifest entries not in the bundle: {', '.join(sorted(unchecked))}"
        )
    if mismatches:
        shown = "; ".join(str(m) for m in mismatches[:5])
        raise BundleError(f"{bundle.path}: the bundled files differ from the manifest: {shown}")
    return len(entries)


def _tree_check(bundle: Bundle, positions: np.ndarray) -> str:
    tree = json.loads((bundle.root / MERKLE).read_text())
    leaves, ids, root = tree["leaves"], tree["patients"], tree["root"]
    if merkle_root(leaves) != root or root != bundle.index["merkle"]["root"]:
        raise BundleError(f"{bundle.path}: {MERKLE}: the leaves do not lead to the signed root")
    recorded = (bundle.manifest.get("merkle") or {}).get("root")
    if recorded is not None:
        if recorded != root:
            raise BundleError(
                f"{bundle.path}: {MERKLE} root {root} is not the manifest's {recorded}"
            )
        report = bundle.index["entries"].get("outputs.credibility_report.html")
        if report and root not in (bundle.root / report).read_text(errors="replace"):
            raise BundleError(f"{bundle.path}: {report} does not print the root {root}")
    fresh = patient_leaves(bundle.results, positions)
    proofs = merkle_proofs(leaves, [int(p) for p in positions])
    for pos, leaf, proof in zip(positions, fresh, proofs, strict=True):
        if leaf != leaves[pos] or not verify_proof(leaf, proof, root):
            raise BundleError(
                f"{bundle.path}: patient {ids[pos]}: its data in cohort.zarr/outcomes.zarr do "
                f"not hash to its leaf of the tree with root {root}"
            )
    where = "the manifest and the report" if recorded else "the bundle's index only"
    return f"root {root} (as in {where}); {len(positions)} patients' leaves and paths checked"


def _rerun(bundle: Bundle, python: str, workdir: Path, positions: np.ndarray) -> dict[str, Any]:
    out = workdir / "rerun"
    request = {
        "results": str(bundle.results),
        "config": str(bundle.entry("config")),
        "run_dir": str(bundle.root / "run"),
        "positions": [int(p) for p in positions],
        "out": str(out),
        "lock": str(bundle.root / LOCK),
    }
    write_json(workdir / "rerun_request.json", request)
    env = {k: os.environ[k] for k in ("PATH", "HOME", "TMPDIR") if k in os.environ}
    env |= {"PYTHONPATH": str(bundle.root / "source"), "OMP_NUM_THREADS": "1"}
    argv = [python, "-m", "isct.rerun", str(workdir / "rerun_request.json")]
    proc = subprocess.run(
        argv, env=env, cwd=workdir, capture_output=True, text=True, timeout=RERUN_TIMEOUT_S
    )
    if proc.returncode != 0:
        raise IsctError(
            f"{bundle.path}: the re-run ({' '.join(argv)}) failed with exit {proc.returncode}:"
            f"\n{(proc.stderr or proc.stdout)[-2000:]}"
        )
    record = json.loads((out / "rerun.json").read_text())
    if record["refused"]:
        raise BundleError(record["refused"])
    source = (bundle.root / "source").resolve()
    if "inputs.model_source" in bundle.index["entries"]:
        source = bundle.entry("inputs.model_source").resolve()
    if not Path(record["model_file"]).resolve().is_relative_to(source):
        raise BundleError(
            f"{bundle.path}: the model that ran ({record['model_file']}) is not the model "
            f"source the manifest recorded ({source})"
        )
    return record


def _tolerance(bundle: Bundle) -> dict[str, Any] | None:
    """The card's ``reproducibility.cross_platform``: the trial's card, else the model's own."""
    entries = bundle.index["entries"]
    if "inputs.model_card" in entries:
        card_path = bundle.entry("inputs.model_card")
    elif "inputs.model_source" in entries:
        card_path = bundle.entry("inputs.model_source") / "card.yaml"
    else:
        return None
    if not card_path.is_file():
        return None
    card = yaml.safe_load(card_path.read_text()) or {}
    return (card.get("reproducibility") or {}).get("cross_platform")


def _allowed(tol: dict[str, Any] | None, output: str) -> tuple[float, float] | None:
    if tol is None:
        return None
    own = (tol.get("outputs") or {}).get(output, tol)
    return float(own["rtol"]), float(own["atol"])


def _compare_outcomes(result: ReplayResult, bundle: Bundle, out: Path, positions, tol) -> None:
    import xarray as xr

    fresh = xr.open_zarr(out / "fresh.zarr", consolidated=False).load()
    stored_group = zarr.open_group(bundle.results / "outcomes.zarr", mode="r")
    ids = np.asarray(zarr.open_group(bundle.results / "cohort.zarr", mode="r")["patient"][:])
    result.arms = [str(a) for a in fresh["arm"].values]
    result.outputs = sorted(fresh.data_vars)
    result.patients = [int(ids[p]) for p in positions]
    for name in result.outputs:
        new = np.asarray(fresh[name].values)
        old = np.asarray(stored_group[name].oindex[(slice(None), positions)])
        allowed = _allowed(tol, name) if result.comparison != "bit for bit" else None
        same = values_match(old, new, allowed).reshape(len(result.arms), len(positions), -1).all(2)
        for a, i in zip(*np.nonzero(~same), strict=True):
            result.differences.append(
                {
                    "patient": int(ids[positions[i]]),
                    "arm": result.arms[a],
                    "output": name,
                    "stored": plain(old[a, i], nan=None),
                    "replayed": plain(new[a, i], nan=None),
                }
            )


def _compare_table(name: str, bundled: Path, fresh: Path, tol) -> dict[str, Any]:
    if not bundled.is_file():
        return {"table": name, "match": False, "detail": f"{bundled.name} not in the bundle"}
    a, b = pd.read_csv(bundled), pd.read_csv(fresh)
    if list(a.columns) != list(b.columns) or a.shape != b.shape:
        return {
            "table": name,
            "match": False,
            "detail": f"shape or columns differ: {a.shape} {list(a.columns)} vs "
            f"{b.shape} {list(b.columns)}",
        }
    cells = []
    for col in a.columns:
        x, y = a[col].to_numpy(), b[col].to_numpy()
        if x.dtype.kind in "fiu" and y.dtype.kind in "fiu":
            same = values_match(x.astype(float), y.astype(float), tol)
        else:
            same = (a[col].astype(str) == b[col].astype(str)).to_numpy()
        cells += [f"row {r} {col}: {x[r]!r} vs {y[r]!r}" for r in np.flatnonzero(~same)]
    detail = f"{a.shape[0]} rows x {a.shape[1]} columns"
    if cells:
        detail = f"{len(cells)} cell(s) differ: " + "; ".join(cells[:5])
    return {"table": name, "match": not cells, "detail": detail}


def replay(
    bundle_path: str | os.PathLike,
    workdir: str | os.PathLike,
    *,
    sample: int | None = 20,
    seed: int = 0,
    pubkey: str | os.PathLike | None = None,
    fresh_env: bool = False,
    find_links: str | None = None,
) -> ReplayResult:
    """Check and re-run a submission bundle in ``workdir`` (empty, or holding only it).

    Parameters
    ----------
    bundle_path : str or path
        The ``.isct.tar`` archive.
    workdir : str or path
        Where to unpack, re-run and write the summary; must be empty apart from the bundle.
    sample : int or None, default 20
        Patients to re-run (chosen with ``seed``); None re-runs every patient.
    seed : int, default 0
        Seed of the choice.
    pubkey : str or path, optional
        The sponsor's public key; without it the bundle's own key checks integrity only.
    fresh_env : bool, default False
        Re-run in a new virtual environment built from the bundle's lock.
    find_links : str, optional
        A wheelhouse for pip (``--find-links``) when building the environment.

    Returns
    -------
    ReplayResult
        Also written by the caller (:func:`write_summary`); when a check stops the replay,
        the summary is written here with the checks that passed and the ``error``.

    Raises
    ------
    BundleError
        A file changed after signing, a manifest or hash-tree mismatch (naming the file or
        patient), a model version the bundle does not contain; :class:`SignatureError` and
        :class:`LockInstallError` for a bad signature and a lock pip cannot install.
    """
    bundle_path, workdir = Path(bundle_path).resolve(), Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    others = [p.name for p in workdir.iterdir() if p.resolve() != bundle_path]
    if others:
        raise IsctError(f"{workdir}: replay needs an empty directory, found {sorted(others)[:5]}")
    result = ReplayResult(bundle=str(bundle_path), trial=None)
    try:
        return _replay(result, bundle_path, workdir, sample, seed, pubkey, fresh_env, find_links)
    except IsctError as err:  # the summary still says what passed and what stopped it
        result.error = str(err)
        write_summary(result, workdir)
        raise


def _replay(
    result: ReplayResult,
    bundle_path: Path,
    workdir: Path,
    sample: int | None,
    seed: int,
    pubkey: str | os.PathLike | None,
    fresh_env: bool,
    find_links: str | None,
) -> ReplayResult:
    clock = time.perf_counter()
    bundle = open_bundle(bundle_path, workdir / "bundle", pubkey=pubkey)
    result.trial = bundle.index["trial"]
    whose = "the key given (--pubkey)" if bundle.trusted_key else "the bundle's own key only"
    _check(result, "signature", f"Ed25519 over index.json, key {bundle.signer} ({whose})")
    _check(result, "file hashes", f"{len(bundle.index['files'])} files match the signed index")
    n = _manifest_check(bundle)
    _check(result, "manifest", f"{n} manifest entries match the bundled files")
    result.seconds["integrity"] = time.perf_counter() - clock

    n_patients = int(bundle.index["merkle"]["n_patients"])
    positions = sample_positions(n_patients, sample, seed)
    clock = time.perf_counter()
    _check(result, "patient hash tree", _tree_check(bundle, positions))
    result.seconds["hash_tree"] = time.perf_counter() - clock

    python = sys.executable
    if fresh_env:
        clock = time.perf_counter()
        python = str(install_lock(bundle.root / LOCK, workdir / "venv", find_links=find_links))
        result.seconds["fresh_env"] = time.perf_counter() - clock
        _check(result, "fresh environment", f"{bundle.root / LOCK} installed into {python}")
    clock = time.perf_counter()
    record = _rerun(bundle, python, workdir, positions)
    result.seconds["rerun"] = time.perf_counter() - clock
    _check(
        result,
        "model",
        f"{record['model']} {record['version_ran']} from the bundle ({record['model_file']}); "
        f"the stores were made with version {record['model_version']}",
    )
    recorded = json.loads((bundle.root / PLATFORM).read_text())
    result.environment = {
        "fresh_env": fresh_env,
        "python_executable": record["python_executable"],
        "replay_platform": record["platform"],
        "bundle_platform": {
            k: v for k, v in recorded.items() if k not in ("packages", "lock_files")
        },
    }
    diffs = platform_differences(recorded, record["platform"])
    pins = read_lock(bundle.root / LOCK)
    diffs += [
        f"package {n}: {v} -> {record['packages'].get(n)}"
        for n, v in pins.items()
        if record["packages"].get(n) != v
    ]
    result.platform_differences = diffs
    tol = _tolerance(bundle)
    if not diffs:
        result.comparison = "bit for bit"
        result.comparison_reason = "platform, CPU features and package versions match the bundle"
    elif tol is None:
        result.comparison = "bit for bit"
        result.comparison_reason = (
            f"{len(diffs)} platform difference(s), but the model card declares no "
            "reproducibility.cross_platform tolerance"
        )
    else:
        result.comparison = "within the model card's cross-platform tolerances"
        result.comparison_reason = f"{len(diffs)} platform difference(s); card: {tol['reason']}"
        result.tolerance = tol
    _compare_outcomes(result, bundle, workdir / "rerun", positions, tol)
    table_tol = None if result.comparison == "bit for bit" else _allowed(tol, "")
    evidence = bundle.results / "evidence"
    for name in TABLES:
        fresh = workdir / "rerun" / "tables" / f"{name}.csv"
        if fresh.is_file():
            result.tables.append(_compare_table(name, evidence / f"{name}.csv", fresh, table_tol))
        elif (evidence / f"{name}.csv").is_file():
            result.tables.append(
                {"table": name, "match": False, "detail": "in the bundle, not regenerated"}
            )
    return result


def write_summary(result: ReplayResult, workdir: str | os.PathLike) -> tuple[Path, Path]:
    """``replay.json`` and ``replay.html`` in ``workdir``: what was checked and found."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    workdir = Path(workdir)
    data = result.to_dict()
    json_path = write_json(workdir / "replay.json", data)
    env = Environment(
        loader=FileSystemLoader(Path(__file__).parent), autoescape=select_autoescape()
    )
    html = env.get_template("replay.html.j2").render(r=data, max_rows=MAX_ROWS)
    html_path = workdir / "replay.html"
    html_path.write_text(html)
    return json_path, html_path
