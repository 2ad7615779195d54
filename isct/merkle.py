"""A per-patient hash tree (Merkle tree) over a trial's cohort and outcomes stores.

Each patient's leaf is the SHA-256 of everything the two stores hold for that patient: every
array of ``cohort.zarr`` and ``outcomes.zarr`` with a ``patient`` dimension, taken along it
(all arms and extra dimensions of the outcomes), in sorted order of ``store/array``, each as
its name, dtype, shape and little-endian bytes. The tree is built over the leaves in patient
order; its root is written into the manifest and printed in the credibility report, so a
reviewer can check any subset of patients against the signed root with ``log2(n)`` hashes
each, without hashing the whole store.

The hashing follows RFC 6962 (Certificate Transparency) in separating leaves from nodes:
``leaf = H(0x00 || data)``, ``node = H(0x01 || left || right)``; a node without a partner at
its level is carried up unchanged.

References
----------
Merkle, R. C. (1988). A digital signature based on a conventional encryption function.
CRYPTO '87, LNCS 293, 369-378. https://doi.org/10.1007/3-540-48184-2_32
Laurie, B., Langley, A., Kasper, E. (2013). Certificate Transparency. RFC 6962.
https://doi.org/10.17487/RFC6962
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from .errors import IsctError

__all__ = [
    "SCHEME",
    "STORES",
    "merkle_proof",
    "merkle_proofs",
    "merkle_root",
    "patient_leaves",
    "tree_summary",
    "verify_proof",
]

#: Name of the leaf and node rules above; recorded with every root.
SCHEME = "isct-patient-merkle-v1 (sha256; leaf 0x00, node 0x01, odd node carried up)"
#: The per-patient stores of a results folder, in the order their arrays are hashed.
STORES = ("cohort.zarr", "outcomes.zarr")
#: Patients read at once when hashing every leaf (memory stays flat in the trial size).
_BLOCK = 4096


def _arrays(results: Path) -> list[tuple[str, Any, int]]:
    """``(store/array, zarr array, patient axis)`` of every per-patient array, sorted."""
    out = []
    for store in STORES:
        path = results / store
        if not (path / "zarr.json").is_file():
            raise IsctError(f"{path}: no zarr store here; the hash tree needs {', '.join(STORES)}")
        group = zarr.open_group(path, mode="r")
        for name, array in group.arrays():
            dims = list(array.metadata.dimension_names or ())
            if "patient" in dims:
                out.append((f"{store}/{name}", array, dims.index("patient")))
    return sorted(out, key=lambda item: item[0])


def _leaf_bytes(name: str, values: np.ndarray) -> list[bytes]:
    """One byte string per patient (first axis of ``values``)."""
    values = np.ascontiguousarray(values)
    values = values.astype(values.dtype.newbyteorder("<"), copy=False)
    head = f"{name}\0{values.dtype.str}\0{values.shape[1:]}\0".encode()
    rows = values.reshape(len(values), -1)
    return [head + row.tobytes() for row in rows]


def patient_leaves(
    results_dir: str | os.PathLike, idx: Sequence[int] | np.ndarray | None = None
) -> list[str]:
    """SHA-256 leaves of the patients at positions ``idx`` (all when None).

    Parameters
    ----------
    results_dir : str or path
        Folder holding ``cohort.zarr`` and ``outcomes.zarr``.
    idx : sequence of int, optional
        Positions along the ``patient`` dimension; None for every patient, in order.

    Returns
    -------
    list of str
        Hex digests, one per position asked for.

    Raises
    ------
    IsctError
        If a store is missing or the stores disagree on the number of patients.
    """
    results = Path(results_dir)
    arrays = _arrays(results)
    sizes = {a.shape[axis] for _, a, axis in arrays}
    if len(sizes) != 1:
        raise IsctError(f"{results}: the stores disagree on the number of patients: {sizes}")
    n = sizes.pop()
    positions = np.arange(n) if idx is None else np.asarray(idx, dtype=np.int64)
    if positions.size and (positions.min() < 0 or positions.max() >= n):
        raise IsctError(f"{results}: patient positions must lie in 0..{n - 1}")
    leaves: list[str] = []
    for start in range(0, len(positions), _BLOCK):
        block = positions[start : start + _BLOCK]
        hashers = [hashlib.sha256(b"\x00") for _ in block]
        for name, array, axis in arrays:
            selection = tuple(block if d == axis else slice(None) for d in range(array.ndim))
            values = np.moveaxis(np.asarray(array.oindex[selection]), axis, 0)
            for h, data in zip(hashers, _leaf_bytes(name, values), strict=True):
                h.update(data)
        leaves += [h.hexdigest() for h in hashers]
    return leaves


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _levels(leaves: Sequence[str]) -> list[list[bytes]]:
    level = [bytes.fromhex(leaf) for leaf in leaves]
    levels = [level]
    while len(level) > 1:
        level = [
            _node(level[i], level[i + 1]) if i + 1 < len(level) else level[i]
            for i in range(0, len(level), 2)
        ]
        levels.append(level)
    return levels


def merkle_root(leaves: Sequence[str]) -> str:
    """Root of the tree over ``leaves`` (hex); the hash of nothing for no leaf."""
    if not leaves:
        return hashlib.sha256(b"").hexdigest()
    return _levels(leaves)[-1][0].hex()


def merkle_proofs(leaves: Sequence[str], positions: Sequence[int]) -> list[list[list[str]]]:
    """The audit paths of the leaves at ``positions``: ``[side, hash]`` pairs, leaf to root.

    ``side`` is ``"L"`` when the sibling is on the left. A level where the node has no
    partner adds nothing. The tree is built once for all positions.
    """
    levels = _levels(leaves)[:-1] if leaves else []
    proofs = []
    for i in positions:
        if not 0 <= i < len(leaves):
            raise IsctError(f"no leaf {i} in a tree of {len(leaves)}")
        proof = []
        for level in levels:
            sibling = i ^ 1
            if sibling < len(level):
                proof.append(["L" if sibling < i else "R", level[sibling].hex()])
            i //= 2
        proofs.append(proof)
    return proofs


def merkle_proof(leaves: Sequence[str], i: int) -> list[list[str]]:
    """The audit path of leaf ``i`` (see :func:`merkle_proofs`)."""
    return merkle_proofs(leaves, [i])[0]


def verify_proof(leaf: str, proof: Sequence[Sequence[str]], root: str) -> bool:
    """True when ``leaf`` with its audit path ``proof`` leads to ``root``."""
    h = bytes.fromhex(leaf)
    for side, sibling in proof:
        other = bytes.fromhex(sibling)
        h = _node(other, h) if side == "L" else _node(h, other)
    return h.hex() == root


def tree_summary(results_dir: str | os.PathLike) -> dict[str, Any]:
    """The root, the number of patients and the scheme, as the manifest records them."""
    leaves = patient_leaves(results_dir)
    return {
        "root": merkle_root(leaves),
        "n_patients": len(leaves),
        "stores": list(STORES),
        "scheme": SCHEME,
    }
