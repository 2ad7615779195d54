"""Signed submission bundles and their replay (issue 16): bundle -> replay in an empty
directory passes; a changed byte, a bad signature, a model version the bundle does not
contain, a lock that cannot be installed, a patient whose data does not hash to its leaf
each fail naming the file, key or patient; values and tables that differ are listed."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import zarr

from isct.bundle import INDEX, LOCK, MERKLE, PLATFORM, SIGNATURE, pack, seal, write_bundle
from isct.cli import main
from isct.environment import read_lock
from isct.errors import BundleError, IsctError, LockInstallError, SignatureError
from isct.merkle import merkle_root, patient_leaves
from isct.provenance import hash_path
from isct.replay import replay, write_summary
from isct.signing import keygen, load_private_key

pytestmark = pytest.mark.filterwarnings("ignore:Object at .snakemake_timestamp")

RESULTS = "run/results/ci_tiny"


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("wheelhouse")


@pytest.fixture(scope="session")
def sponsor(tiny_run, wheelhouse, tmp_path_factory) -> dict[str, Path]:
    """A key pair and a bundle of the tiny run signed with it (through the command line)."""
    folder = tmp_path_factory.mktemp("sponsor")
    assert main(["keygen", str(folder / "sponsor.key")]) == 0
    out = folder / "ci_tiny.isct.tar"
    argv = ["bundle", str(tiny_run / "results" / "ci_tiny"), "-o", str(out)]
    assert main([*argv, "--key", str(folder / "sponsor.key"), "--wheelhouse", str(wheelhouse)]) == 0
    return {"key": folder / "sponsor.key", "pub": folder / "sponsor.key.pub", "bundle": out}


def _unpack(bundle: Path, dest: Path) -> Path:
    with tarfile.open(bundle) as tar:
        tar.extractall(dest, filter="data")
    return dest


def _repack(folder: Path, out: Path, key: Path | None = None) -> Path:
    """Pack ``folder`` again; with ``key``, re-sign it first (a sponsor's own bundle)."""
    if key is not None:
        index = json.loads((folder / INDEX).read_text())
        index.pop("files")
        seal(folder, index, load_private_key(key))
    return pack(folder, out)


def _resign_data(folder: Path, *, tree: bool = True) -> None:
    """After the stores changed: every manifest hash and (``tree``) the hash tree with its
    root in manifest, report and index, as a sponsor who re-ran the report stage has them."""
    results = folder / RESULTS
    manifest_path = results / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    index = json.loads((folder / INDEX).read_text())
    if tree:
        old = json.loads((folder / MERKLE).read_text())
        leaves = patient_leaves(results)
        root = merkle_root(leaves)
        report = folder / index["entries"]["outputs.credibility_report.html"]
        report.write_text(report.read_text().replace(old["root"], root))
        (folder / MERKLE).write_text(json.dumps({**old, "leaves": leaves, "root": root}))
        index["merkle"]["root"] = manifest["merkle"]["root"] = root
        (folder / INDEX).write_text(json.dumps(index))
    for group in ("inputs", "outputs"):
        for label, entry in manifest[group].items():
            entry.update(hash_path(folder / index["entries"][f"{group}.{label}"]))
    manifest_path.write_text(json.dumps(manifest, indent=2))


def _change_outcome(folder: Path, factor: float = 1.0, delta: float = 0.0, nth: int = 0):
    """Change the ``nth`` ok patient's stored gradient in the second arm; (patient, old)."""
    group = zarr.open_group(folder / RESULTS / "outcomes.zarr", mode="r+")
    values, status = group["mean_gradient_mmhg"], group["status"][1]
    patient = int(np.flatnonzero(status == 0)[nth])
    old = float(values[1, patient])
    values[1, patient] = old * factor + delta
    return patient, old


def test_keygen_writes_a_pair_and_refuses_to_overwrite(tmp_path, capsys):
    assert main(["keygen", str(tmp_path / "k")]) == 0
    assert "fingerprint (SHA-256)" in capsys.readouterr().out
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600
    assert b"PUBLIC KEY" in (tmp_path / "k.pub").read_bytes()
    assert main(["keygen", str(tmp_path / "k")]) == 2
    assert "k: exists" in capsys.readouterr().err
    with pytest.raises(IsctError, match="j.pub: not a readable unencrypted PEM private key"):
        keygen(tmp_path / "j")
        load_private_key(tmp_path / "j.pub")


def test_a_bundle_holds_inputs_source_stores_lock_and_tree(sponsor, tmp_path):
    folder = _unpack(sponsor["bundle"], tmp_path / "b")
    index = json.loads((folder / INDEX).read_text())
    entries = index["entries"]
    for label in (
        "config",
        "inputs.population_spec",
        "inputs.plan",
        "inputs.comparators",
        "inputs.model_card",
        "inputs.model_source",
        "outputs.calibration",
        "outputs.outcomes.zarr",
        "outputs.cohort.zarr",
        "outputs.credibility_report.html",
    ):
        assert (folder / entries[label]).exists(), label
    assert entries["inputs.model_source"].startswith("source/models/")
    assert (folder / RESULTS / "manifest.json").is_file()
    assert (folder / "source" / "isct" / "replay.py").is_file()
    pins = read_lock(folder / LOCK)
    assert "numpy" in pins and "isct" not in pins
    assert all(" --hash=sha256:" in ln for ln in (folder / LOCK).read_text().splitlines()[3:])
    env = json.loads((folder / PLATFORM).read_text())
    assert env["python"] and env["machine"] and env["cpu_features"]
    tree = json.loads((folder / MERKLE).read_text())
    assert len(tree["leaves"]) == len(tree["patients"]) == 40
    assert tree["root"] == index["merkle"]["root"] == index["merkle"]["in_report"]


def test_bundle_then_replay_in_an_empty_directory_passes(sponsor, tmp_path, capsys):
    work = tmp_path / "review"
    argv = ["replay", str(sponsor["bundle"]), "--pubkey", str(sponsor["pub"])]
    assert main([*argv, "--sample", "6", "--directory", str(work)]) == 0
    out = capsys.readouterr().out
    assert "compared bit for bit" in out and "6 patient(s)" in out
    summary = json.loads((work / "replay.json").read_text())
    assert summary["ok"] is True and len(summary["patients"]) == 6
    assert summary["comparison"] == "bit for bit" and summary["platform_differences"] == []
    assert {t["table"] for t in summary["tables"]} >= {"answer_by_arm", "answer_paired"}
    assert all(t["match"] for t in summary["tables"])
    checks = {c["check"] for c in summary["checks"]}
    assert checks >= {"signature", "file hashes", "manifest", "patient hash tree", "model"}
    html = (work / "replay.html").read_text()
    assert "bit for bit" in html and ", ".join(map(str, summary["patients"])) in html
    # a directory that is not empty is refused
    assert main([*argv, "--directory", str(work)]) == 2
    assert "needs an empty directory" in capsys.readouterr().err


@pytest.mark.parametrize(
    "member",
    [
        f"{RESULTS}/outcomes.zarr/mean_gradient_mmhg/c/1/0",
        f"{RESULTS}/manifest.json",
        LOCK,
        MERKLE,
        "source/models/tavr/kernel.py",
        "source/isct/replay.py",
    ],
)
def test_a_changed_byte_in_a_bundled_file_fails_naming_it(sponsor, tmp_path, member):
    folder = _unpack(sponsor["bundle"], tmp_path / "b")
    data = bytearray((folder / member).read_bytes())
    data[len(data) // 2] ^= 0x01
    (folder / member).write_bytes(bytes(data))
    bad = _repack(folder, tmp_path / "bad.isct.tar")
    with pytest.raises(BundleError, match=f"1 file\\(s\\) differ .*modified: {member}$"):
        replay(bad, tmp_path / "review", pubkey=sponsor["pub"])
    summary = json.loads((tmp_path / "review" / "replay.json").read_text())
    assert summary["ok"] is False and summary["error"].endswith(f"modified: {member}")


def test_a_wrong_or_missing_signature_fails(sponsor, tmp_path):
    other, other_pub = keygen(tmp_path / "other.key")
    with pytest.raises(SignatureError, match="signature does not verify with the key"):
        replay(sponsor["bundle"], tmp_path / "r1", pubkey=other_pub)
    # re-signed by someone else: fine with its own key, refused with the sponsor's
    folder = _unpack(sponsor["bundle"], tmp_path / "b")
    forged = _repack(folder, tmp_path / "forged.isct.tar", key=other)
    with pytest.raises(SignatureError, match=f"{SIGNATURE} over {INDEX}"):
        replay(forged, tmp_path / "r2", pubkey=sponsor["pub"])
    (folder / SIGNATURE).unlink()
    unsigned = _repack(folder, tmp_path / "unsigned.isct.tar")
    with pytest.raises(SignatureError, match="signature.ed25519 is missing; the bundle is not"):
        replay(unsigned, tmp_path / "r3")


def test_a_model_version_the_bundle_does_not_contain_fails(sponsor, tmp_path):
    folder = _unpack(sponsor["bundle"], tmp_path / "b")
    meta = folder / RESULTS / "outcomes.zarr" / "zarr.json"
    doc = json.loads(meta.read_text())
    real = doc["attributes"]["model_version"]
    doc["attributes"]["model_version"] = "9.9.9"
    meta.write_text(json.dumps(doc))
    _resign_data(folder)
    bad = _repack(folder, tmp_path / "v.isct.tar", key=sponsor["key"])
    with pytest.raises(BundleError, match=f"version 9.9.9; the bundle contains version {real}"):
        replay(bad, tmp_path / "review", sample=2, pubkey=sponsor["pub"])
    summary = json.loads((tmp_path / "review" / "replay.json").read_text())
    assert [c["check"] for c in summary["checks"]] == [
        "signature",
        "file hashes",
        "manifest",
        "patient hash tree",
    ]
    assert "9.9.9" in (tmp_path / "review" / "replay.html").read_text()


def test_a_lock_that_cannot_be_installed_fails_naming_the_package(sponsor, tmp_path):
    folder = _unpack(sponsor["bundle"], tmp_path / "b")
    version = read_lock(folder / LOCK)["pyyaml"]
    (folder / LOCK).write_text(f"pyyaml=={version} --hash=sha256:{'0' * 64}\n")
    bad = _repack(folder, tmp_path / "lock.isct.tar", key=sponsor["key"])
    with pytest.raises(LockInstallError, match=r"lock.txt: the environment lock cannot be"):
        try:
            replay(bad, tmp_path / "review", sample=2, fresh_env=True)
        except LockInstallError as err:
            assert "pyyaml" in str(err).lower() and "0" * 64 in str(err)
            raise


def test_a_patient_whose_data_do_not_hash_to_its_leaf_is_named(sponsor, tmp_path):
    folder = _unpack(sponsor["bundle"], tmp_path / "b")
    patient, _ = _change_outcome(folder, delta=0.5)
    # a sponsor-signed bundle whose manifest agrees with the changed store, but not the tree
    _resign_data(folder, tree=False)
    bad = _repack(folder, tmp_path / "leaf.isct.tar", key=sponsor["key"])
    with pytest.raises(BundleError, match=f"patient {patient}: its data .* do not hash"):
        replay(bad, tmp_path / "review", sample=None, pubkey=sponsor["pub"])


def test_a_tree_root_not_the_one_manifest_and_report_record_fails(sponsor, tmp_path):
    """A sponsor-signed bundle whose hash tree was rebuilt after a change (leaves and root
    agree with the stores and the index) still fails: the report names another root, and
    so, once the report is made to agree, does the manifest."""
    folder = _unpack(sponsor["bundle"], tmp_path / "b")
    _change_outcome(folder, delta=0.5)
    _resign_data(folder)  # tree, index, manifest and report carry the new root
    index = json.loads((folder / INDEX).read_text())
    report = folder / index["entries"]["outputs.credibility_report.html"]
    root = json.loads((folder / MERKLE).read_text())["root"]
    report.write_text(report.read_text().replace(root, "0" * 64))
    _resign_data(folder, tree=False)  # the manifest hashes the edited report
    bad = _repack(folder, tmp_path / "report.isct.tar", key=sponsor["key"])
    with pytest.raises(BundleError, match=f"does not print the root {root}"):
        replay(bad, tmp_path / "review1", sample=3, pubkey=sponsor["pub"])

    report.write_text(report.read_text().replace("0" * 64, root))
    manifest_path = folder / RESULTS / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["merkle"]["root"] = "f" * 64
    manifest_path.write_text(json.dumps(manifest, indent=2))
    _resign_data(folder, tree=False)
    bad = _repack(folder, tmp_path / "manifest.isct.tar", key=sponsor["key"])
    with pytest.raises(BundleError, match=f"root {root} is not the manifest's f{{64}}"):
        replay(bad, tmp_path / "review2", sample=3, pubkey=sponsor["pub"])


def test_another_platform_compares_within_the_cards_tolerance(sponsor, tmp_path):
    folder = _unpack(sponsor["bundle"], tmp_path / "b")
    near, _ = _change_outcome(folder, factor=1 + 1e-9, nth=0)  # within rtol 1e-6
    far, _ = _change_outcome(folder, delta=1.0, nth=1)  # beyond it
    _resign_data(folder)
    same_platform = _repack(folder, tmp_path / "same.isct.tar", key=sponsor["key"])
    result = replay(same_platform, tmp_path / "r1", sample=None, pubkey=sponsor["pub"])
    assert result.comparison == "bit for bit" and result.tolerance is None and not result.ok
    assert [(d["patient"], d["output"]) for d in result.differences] == [
        (near, "mean_gradient_mmhg"),
        (far, "mean_gradient_mmhg"),
    ]
    env = json.loads((folder / PLATFORM).read_text())
    (folder / PLATFORM).write_text(json.dumps({**env, "cpu_name": "another-cpu"}))
    other = _repack(folder, tmp_path / "other.isct.tar", key=sponsor["key"])
    result = replay(other, tmp_path / "r2", sample=None, pubkey=sponsor["pub"])
    assert result.comparison == "within the model card's cross-platform tolerances"
    assert result.platform_differences == [f"cpu_name: another-cpu -> {env['cpu_name']}"]
    assert result.tolerance["rtol"] == pytest.approx(1e-6)
    assert [d["patient"] for d in result.differences] == [far]  # the near one is within
    html = write_summary(result, tmp_path / "r2")[1].read_text()
    assert "within the model card" in html and "another-cpu" in html


def test_a_report_table_that_does_not_follow_from_the_stores_is_named(sponsor, tmp_path, capsys):
    folder = _unpack(sponsor["bundle"], tmp_path / "b")
    table = folder / RESULTS / "evidence" / "answer_by_arm.csv"
    lines = table.read_text().splitlines()
    cells = lines[1].split(",")
    cells[-1] = "0.123456"
    table.write_text("\n".join([lines[0], ",".join(cells), *lines[2:]]) + "\n")
    _resign_data(folder)
    bad = _repack(folder, tmp_path / "table.isct.tar", key=sponsor["key"])
    argv = ["replay", str(bad), "--sample", "2", "--directory", str(tmp_path / "review")]
    assert main(argv) == 1
    assert "tables differ: answer_by_arm" in capsys.readouterr().out
    summary = json.loads((tmp_path / "review" / "replay.json").read_text())
    bad_table = next(t for t in summary["tables"] if t["table"] == "answer_by_arm")
    assert not bad_table["match"] and "1 cell(s) differ: row 0" in bad_table["detail"]


@pytest.mark.slow
def test_replay_in_a_fresh_environment_built_from_the_lock(sponsor, wheelhouse, tmp_path):
    """The whole lock installed with --require-hashes into a new venv (pip's files from the
    wheelhouse the bundle step filled), and the re-run done by that venv's python."""
    work = tmp_path / "review"
    result = replay(
        sponsor["bundle"],
        work,
        sample=3,
        pubkey=sponsor["pub"],
        fresh_env=True,
        find_links=str(wheelhouse),
    )
    assert result.ok and result.comparison == "bit for bit", result.platform_differences
    rerun = json.loads((work / "rerun" / "rerun.json").read_text())
    assert rerun["python_executable"].startswith(str(work / "venv"))
    pins = read_lock(work / "bundle" / LOCK)
    assert rerun["packages"] == pins  # every locked version is what the venv has
    assert "fresh_env" in result.seconds
    shutil.rmtree(work / "venv")


def test_bundle_refuses_a_changed_folder_and_one_without_its_run_directory(
    tiny_run, sponsor, wheelhouse, tmp_path, capsys
):
    copy = tmp_path / "alone"
    shutil.copytree(
        tiny_run / "results" / "ci_tiny", copy, ignore=shutil.ignore_patterns("*_runs.zarr")
    )
    argv = ["bundle", str(copy), "-o", str(tmp_path / "x.isct.tar"), "--key", str(sponsor["key"])]
    argv += ["--wheelhouse", str(wheelhouse)]
    assert main(argv) == 2
    assert "'outputs.credibility_report.html'" in capsys.readouterr().err
    check = copy / "cohort_check.csv"
    check.write_text(check.read_text() + "\n")
    assert main([*argv, "--root", str(tiny_run)]) == 2
    err = capsys.readouterr().err
    assert "refusing to bundle" in err and "alone/cohort_check.csv" in err
    assert not (tmp_path / "x.isct.tar").exists()


def test_bundle_refuses_a_model_source_of_another_installation(
    tiny_run, sponsor, tmp_path, monkeypatch
):
    """The bundled packages must be the ones whose model ran (else the replay would import
    another copy of the model than the manifest hashed)."""
    import isct.bundle

    other = tmp_path / "other_install"
    for name in isct.bundle.SOURCE_PACKAGES:
        shutil.copytree(
            isct.bundle.data_root() / name,
            other / name,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    monkeypatch.setattr(isct.bundle, "data_root", lambda: other)
    with pytest.raises(BundleError, match="belongs to another installation of isct"):
        write_bundle(
            tiny_run / "results" / "ci_tiny",
            tmp_path / "x.isct.tar",
            key=load_private_key(sponsor["key"]),
            wheelhouse=tmp_path / "unused",
        )
