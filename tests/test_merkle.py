"""The per-patient hash tree (isct.merkle): known structure, proofs, one patient's change."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import zarr
from conftest import synthetic_trial

from isct.errors import IsctError
from isct.merkle import merkle_proof, merkle_proofs, merkle_root, patient_leaves, verify_proof


def _h(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def stores(tmp_path):
    cohort, outcomes = synthetic_trial(n=37, seed=3)
    cohort.to_zarr(tmp_path / "cohort.zarr", consolidated=False, zarr_format=3)
    outcomes.to_zarr(tmp_path / "outcomes.zarr", consolidated=False, zarr_format=3)
    return tmp_path


def test_root_of_three_leaves_follows_rfc6962_prefixes_and_carries_the_odd_node():
    leaves = [_h(b"a"), _h(b"b"), _h(b"c")]
    ab = hashlib.sha256(b"\x01" + bytes.fromhex(leaves[0]) + bytes.fromhex(leaves[1])).digest()
    expected = hashlib.sha256(b"\x01" + ab + bytes.fromhex(leaves[2])).hexdigest()
    assert merkle_root(leaves) == expected
    assert merkle_root(leaves[:1]) == leaves[0]
    assert merkle_proof(leaves, 2) == [["L", ab.hex()]]


@pytest.mark.parametrize("n", [1, 2, 5, 8, 37])
def test_every_proof_leads_to_the_root_and_no_other_leaf_does(n):
    leaves = [_h(str(i).encode()) for i in range(n)]
    root = merkle_root(leaves)
    proofs = merkle_proofs(leaves, range(n))
    assert all(verify_proof(leaf, p, root) for leaf, p in zip(leaves, proofs, strict=True))
    if n > 1:
        assert not verify_proof(leaves[1], proofs[0], root)
    with pytest.raises(IsctError, match=f"no leaf {n} in a tree of {n}"):
        merkle_proof(leaves, n)


def test_a_changed_outcome_changes_that_patients_leaf_only(stores):
    before = patient_leaves(stores)
    assert len(before) == 37 and patient_leaves(stores, [4, 30]) == [before[4], before[30]]
    values = zarr.open_group(stores / "outcomes.zarr", mode="r+")["eoa_cm2"]
    values[1, 30] = np.nextafter(values[1, 30], np.inf)  # one bit, second arm
    after = patient_leaves(stores)
    assert [i for i in range(37) if after[i] != before[i]] == [30]
    assert merkle_root(after) != merkle_root(before)
    assert not verify_proof(after[30], merkle_proof(before, 30), merkle_root(before))


def test_stores_that_disagree_on_the_patients_are_refused(stores, tmp_path):
    cohort, _ = synthetic_trial(n=36, seed=3)
    cohort.to_zarr(stores / "cohort.zarr", mode="w", consolidated=False, zarr_format=3)
    with pytest.raises(IsctError, match="disagree on the number of patients"):
        patient_leaves(stores)
    with pytest.raises(IsctError, match="no zarr store here"):
        patient_leaves(tmp_path / "nothing")
