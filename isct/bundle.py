"""``isct bundle``: a signed submission bundle of one trial, and opening one for replay.

Layout of a bundle (an uncompressed tar, ``<name>.isct.tar``)::

    index.json            format, trial, where each manifest entry lies in the bundle,
                          the Merkle root, and the SHA-256 of every other file
    signature.ed25519     Ed25519 signature of index.json's bytes (raw, 64 bytes)
    signer.pub            the signer's public key (PEM)
    run/                  the run directory as the manifest records it: results/<trial>/
                          (manifest, cohort and outcomes, calibration, evidence, ...),
                          reports/<trial>/, and every input recorded by a relative path
    external/<entry>/     inputs the manifest records by an absolute path (config, specs,
                          plan, comparators, card outside the run directory)
    source/               the packages that ran (isct, cohorts, models, credibility), the
                          workflow (Snakefile, workflow/, config/) and a model package
                          outside them: a checkout isct runs from
    merkle.json           the per-patient hash tree: patient ids, leaves, root
    environment/lock.txt  pip lock: exact versions with the SHA-256 of each file
    environment/platform.json  Python, OS, machine, CPU name and features, package versions

Before writing, the results folder is checked against its manifest (a bundle of a changed
folder is refused) and the hash tree's root against the one the manifest recorded.
:func:`open_bundle` checks a bundle the other way: the signature, then every file's hash.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from . import __version__
from .environment import dependency_closure, platform_record, write_lock
from .errors import BundleError, SignatureError
from .jsonio import read_json
from .merkle import SCHEME, merkle_root, patient_leaves
from .provenance import MANIFEST_NAME, ManifestError, check_manifest, hash_path, sha256_file
from .resources import data_root, workflow_dir
from .signing import fingerprint, load_public_key, public_pem, sign, verify_signature
from .verify import locator, run_directory

__all__ = ["Bundle", "open_bundle", "pack", "seal", "write_bundle"]

FORMAT = "isct-bundle"
FORMAT_VERSION = 1
INDEX, SIGNATURE, SIGNER = "index.json", "signature.ed25519", "signer.pub"
LOCK, PLATFORM, MERKLE = "environment/lock.txt", "environment/platform.json", "merkle.json"
#: The packages whose source is bundled (the code that ran, beside the model's own package).
SOURCE_PACKAGES = ("isct", "cohorts", "models", "credibility")
#: The workflow beside them, so that the bundled source is a checkout isct runs from.
WORKFLOW_FILES = ("Snakefile", "workflow", "config")
_UNSIGNED = frozenset({INDEX, SIGNATURE, SIGNER})


@dataclass(frozen=True)
class Bundle:
    """A bundle opened and checked by :func:`open_bundle`.

    Attributes
    ----------
    path : Path
        The archive.
    root : Path
        Where it was unpacked.
    index : dict
        Its ``index.json``.
    signer : str
        SHA-256 fingerprint of the key the signature verified with.
    trusted_key : bool
        True when that key was given (``--pubkey``), False when it is the bundle's own.
    """

    path: Path
    root: Path
    index: dict[str, Any]
    signer: str
    trusted_key: bool

    @property
    def results(self) -> Path:
        """The unpacked results folder."""
        return self.root / self.index["results_dir"]

    @property
    def manifest(self) -> dict[str, Any]:
        return json.loads((self.results / MANIFEST_NAME).read_text())

    def entry(self, label: str) -> Path:
        """Where manifest entry ``label`` lies in the unpacked bundle."""
        return self.root / self.index["entries"][label]


def _copy(src: Path, dest: Path) -> None:
    """Copy a file, or a directory's hashed files (as :func:`hash_path` sees them)."""
    if src.is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        return
    for rel in hash_path(src)["files"]:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / rel, dest / rel)


def _safe_rel(text: str) -> str:
    parts = [p for p in PurePosixPath(text).parts if p not in ("/", "..", ".")]
    return "/".join(parts)


def _stage(results: Path, run_dir: Path | None, staging: Path, wheelhouse: Path) -> dict:
    """Copy everything into ``staging``; the index without its file hashes."""
    target = results / MANIFEST_NAME
    try:
        manifest = read_json(target, "manifest", ManifestError)
        locate = locator(results, manifest, run_dir, strict=True)
        mismatches, unchecked = check_manifest(target, locate)
    except ManifestError as err:
        raise BundleError(str(err)) from err
    if unchecked:
        label, recorded = next(iter(unchecked.items()))
        raise BundleError(
            f"{target}: entry '{label}' ({recorded}) lies outside the results folder and no "
            "run directory is known to find it in; give --root RUN_DIR"
        )
    if mismatches:
        shown = "; ".join(str(m) for m in mismatches[:5])
        raise BundleError(
            f"{results}: {len(mismatches)} file(s) differ from {target.name}, refusing to bundle "
            f"them ({shown}{'; …' if len(mismatches) > 5 else ''})"
        )
    inside = str(manifest.get("results_dir") or f"results/{manifest['trial']}").rstrip("/")
    results_in_bundle = (
        f"run/{_safe_rel(inside)}" if not Path(inside).is_absolute() else "run/results/trial"
    )
    # the code that ran: the packages beside the model's own, and the workflow (schemas)
    packages = data_root()
    for name in SOURCE_PACKAGES:
        _copy(packages / name, staging / "source" / name)
    for name in WORKFLOW_FILES:
        _copy(workflow_dir() / name, staging / "source" / name)
    entries: dict[str, str] = {}
    labels = ["config"] + [
        f"{group}.{name}" for group in ("inputs", "outputs") for name in sorted(manifest[group])
    ]
    for label in labels:
        group, _, name = label.partition(".")
        recorded = manifest[group]["path"] if group == "config" else manifest[group][name]["path"]
        src = locate(label, recorded)  # strict, and every entry was found: never None
        if recorded == inside or recorded.startswith(inside + "/"):
            dest = f"{results_in_bundle}/{recorded[len(inside) + 1 :]}".rstrip("/")
        elif label == "inputs.model_source":
            dest = _model_source(src.resolve(), packages.resolve())
            if not dest.startswith(tuple(f"source/{n}/" for n in SOURCE_PACKAGES)) and (
                src.resolve().parent.name in SOURCE_PACKAGES
            ):  # a built-in model of another installation than the one bundling
                raise BundleError(
                    f"{target}: the model source {src} belongs to another installation of "
                    f"isct than this one ({packages}); bundle with the isct that ran the trial"
                )
        elif not Path(recorded).is_absolute():
            dest = f"run/{_safe_rel(recorded)}"
        else:
            dest = f"external/{label}/{src.name}"
        _copy(src, staging / dest)  # entries may overlap (a table inside a folder entry)
        entries[label] = dest
    _copy(target, staging / results_in_bundle / MANIFEST_NAME)
    ids, leaves = _tree(staging / results_in_bundle)
    root = merkle_root(leaves)
    recorded_root = (manifest.get("merkle") or {}).get("root")
    if recorded_root is not None and recorded_root != root:
        raise BundleError(
            f"{target}: the patients' hash tree root is {root}, the manifest (and report) "
            f"recorded {recorded_root}"
        )
    merkle = {"scheme": SCHEME, "root": root, "patients": ids, "leaves": leaves}
    (staging / MERKLE).write_text(json.dumps(merkle, indent=1) + "\n")
    (staging / "environment").mkdir(exist_ok=True)
    locked = write_lock(staging / LOCK, wheelhouse)
    env = {**platform_record(), "packages": dependency_closure(), "isct": __version__}
    env["lock_files"] = {n: e["file"] for n, e in locked.items()}
    (staging / PLATFORM).write_text(json.dumps(env, indent=2, sort_keys=True) + "\n")
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "trial": manifest["trial"],
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "isct_version": __version__,
        "results_dir": results_in_bundle,
        "entries": entries,
        "merkle": {"root": root, "n_patients": len(leaves), "in_report": recorded_root},
        "source": "source",
        "lock": LOCK,
        "platform": PLATFORM,
    }


def _model_source(src: Path, packages: Path) -> str:
    """Bundle path of the model's package: inside a bundled package, or its own folder."""
    for name in SOURCE_PACKAGES:
        try:
            return f"source/{name}/{src.relative_to(packages / name).as_posix()}".rstrip("/")
        except ValueError:
            continue
    return f"source/{src.name}"


def _tree(results: Path) -> tuple[list[Any], list[str]]:
    import zarr

    ids = [int(i) for i in zarr.open_group(results / "cohort.zarr", mode="r")["patient"][:]]
    return ids, patient_leaves(results)


def _signed_files(root: Path) -> dict[str, Path]:
    """Every file under ``root`` the index hashes (all but the index, signature and key)."""
    files = {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}
    return {rel: p for rel, p in files.items() if rel not in _UNSIGNED}


def seal(staging: str | os.PathLike, index: dict[str, Any], key) -> None:
    """Hash every file of ``staging`` into ``index``, write it and sign it with ``key``."""
    staging = Path(staging)
    files = {rel: sha256_file(p) for rel, p in _signed_files(staging).items()}
    index = {**index, "files": files}
    data = (json.dumps(index, indent=1, sort_keys=True) + "\n").encode()
    (staging / INDEX).write_bytes(data)
    (staging / SIGNATURE).write_bytes(base64.b64encode(sign(data, key)) + b"\n")
    (staging / SIGNER).write_bytes(public_pem(key.public_key()))


def pack(staging: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write ``staging`` as an uncompressed tar, members sorted, owners and times zeroed."""
    staging, out = Path(staging), Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for p in sorted(staging.rglob("*")):
            if not p.is_file():
                continue
            info = tarfile.TarInfo(p.relative_to(staging).as_posix())
            info.size, info.mode, info.mtime = p.stat().st_size, 0o644, 0
            with p.open("rb") as fh:
                tar.addfile(info, fh)
    tmp.replace(out)
    return out


def write_bundle(
    results_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    key,
    root: str | os.PathLike | None = None,
    wheelhouse: str | os.PathLike | None = None,
) -> Path:
    """Bundle a finished trial and sign it.

    Parameters
    ----------
    results_dir : str or path
        ``results/<trial>`` of a finished run (with its ``manifest.json``).
    out : str or path
        The archive to write (``<name>.isct.tar``).
    key : Ed25519PrivateKey
        The sponsor's key (:func:`isct.signing.load_private_key`).
    root : str or path, optional
        The run directory (default: the folder above ``results/``).
    wheelhouse : str or path, optional
        Folder of the locked packages' files, fetched there by pip when missing (default:
        ``$XDG_CACHE_HOME/isct/wheels``, else ``~/.cache/isct/wheels``).

    Returns
    -------
    Path
        The archive.

    Raises
    ------
    BundleError
        If a file differs from the manifest, the hash tree's root from the recorded one, or
        pip cannot fetch a locked package.
    """
    results = Path(results_dir).resolve()
    run_dir = run_directory(results, root)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    house = Path(wheelhouse) if wheelhouse else cache / "isct" / "wheels"
    with tempfile.TemporaryDirectory(prefix="isct-bundle-") as tmp:
        staging = Path(tmp)
        index = _stage(results, run_dir, staging, house)
        seal(staging, index, key)
        return pack(staging, out)


def _unpack(path: Path, dest: Path) -> None:
    try:
        tar = tarfile.open(path, "r:")
    except (OSError, tarfile.TarError) as err:
        raise BundleError(f"{path}: not a readable isct bundle (tar): {err}") from err
    with tar:
        for member in tar.getmembers():
            name = member.name
            if (
                not (member.isfile() or member.isdir())
                or name.startswith("/")
                or ".." in (PurePosixPath(name).parts)
            ):
                raise BundleError(f"{path}: member {name!r} is not a plain relative file")
        tar.extractall(dest, filter="data")


def open_bundle(
    path: str | os.PathLike, dest: str | os.PathLike, *, pubkey: str | os.PathLike | None = None
) -> Bundle:
    """Unpack a bundle into ``dest`` and check its signature and every file's hash.

    Parameters
    ----------
    path : str or path
        The archive.
    dest : str or path
        An empty folder to unpack into.
    pubkey : str or path, optional
        The sponsor's public key (PEM) to check the signature with; without it the key in
        the bundle is used, which proves integrity but not who signed.

    Returns
    -------
    Bundle

    Raises
    ------
    SignatureError
        If the signature is missing, unreadable, or does not verify with the key.
    BundleError
        Naming every file that was changed, removed or added after signing.
    """
    path, dest = Path(path), Path(dest)
    _unpack(path, dest)
    if not (dest / INDEX).is_file():
        raise BundleError(f"{path}: no {INDEX}; not an isct bundle")
    data = (dest / INDEX).read_bytes()
    if not (dest / SIGNATURE).is_file():
        raise SignatureError(f"{path}: {SIGNATURE} is missing; the bundle is not signed")
    try:
        signature = base64.b64decode((dest / SIGNATURE).read_bytes().strip(), validate=True)
    except ValueError as err:
        raise SignatureError(f"{path}: {SIGNATURE} is not base64 ({err})") from err
    if pubkey is not None:
        key = load_public_key(Path(pubkey).read_bytes(), str(pubkey))
    elif (dest / SIGNER).is_file():
        key = load_public_key((dest / SIGNER).read_bytes(), f"{path}: {SIGNER}")
    else:
        raise SignatureError(f"{path}: {SIGNER} is missing and no --pubkey was given")
    verify_signature(data, signature, key, f"{path}: {SIGNATURE} over {INDEX}")
    index = json.loads(data)
    if index.get("format") != FORMAT:
        raise BundleError(f"{path}: {INDEX} key 'format' is {index.get('format')!r}, not {FORMAT}")
    recorded = index["files"]
    present = _signed_files(dest)
    problems = []
    for rel in sorted(set(recorded) | set(present)):
        if rel not in present:
            problems.append(f"missing: {rel}")
        elif rel not in recorded:
            problems.append(f"added: {rel}")
        elif sha256_file(present[rel]) != recorded[rel]:
            problems.append(f"modified: {rel}")
    if problems:
        shown = "; ".join(problems[:10]) + ("; …" if len(problems) > 10 else "")
        raise BundleError(
            f"{path}: {len(problems)} file(s) differ from the signed {INDEX}: {shown}"
        )
    return Bundle(path, dest, index, fingerprint(key), trusted_key=pubkey is not None)
