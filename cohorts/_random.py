"""Per-patient random streams, vectorised over patients.

The stream of patient ``i`` under trial seed ``seed`` is defined as follows.

1. ``key_i = SeedSequence(seed, spawn_key=(i,)).generate_state(2, numpy.uint32)``, i.e. the
   two 32-bit words numpy's :class:`numpy.random.SeedSequence` (O'Neill's seed_seq hash) would
   produce for that patient. :func:`patient_keys` reproduces that hash bit for bit with array
   arithmetic instead of creating one Python object per patient (tested against numpy).
   ``patient_seed = key_i[0] | key_i[1] << 32`` is the uint64 stored in every cohort.
2. Draw block ``j`` of attempt ``a`` is Philox4x32-10 (Salmon et al. 2011) with key
   ``(key_i[0], key_i[1])`` and counter ``(j, a, 0, 0)``; its four 32-bit output words
   ``w0..w3`` give two uniforms ``((w0 >> 5) * 2**26 + (w1 >> 6) + 0.5) / 2**53`` and
   ``((w2 >> 5) * 2**26 + (w3 >> 6) + 0.5) / 2**53`` in the open interval (0, 1).

Every number a patient uses is therefore a pure function of ``(seed, i, attempt, draw)``:
cohorts are identical whatever the batch size, worker count or order of generation.

References
----------
Salmon JK, Moraes MA, Dror RO, Shaw DE. Parallel random numbers: as easy as 1, 2, 3.
SC '11, 2011. doi:10.1145/2063384.2063405
O'Neill ME. Developing a seed_seq alternative (randutils), 2015; implemented as
numpy.random.SeedSequence.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MAX_PATIENTS", "patient_keys", "philox4x32", "uniforms"]

_MASK32 = 0xFFFFFFFF
# numpy.random.SeedSequence constants (numpy/random/bit_generator.pyx).
_INIT_A = 0x43B0D7E5
_MULT_A = 0x931E8875
_INIT_B = 0x8B51F9DD
_MULT_B = 0x58F38DED
_MIX_MULT_L = 0xCA01F9DD
_MIX_MULT_R = 0x4973F715
_XSHIFT = 16
_POOL_SIZE = 4
# Philox4x32 constants (Random123).
_PHILOX_M0 = 0xD2511F53
_PHILOX_M1 = 0xCD9E8D57
_PHILOX_W0 = 0x9E3779B9
_PHILOX_W1 = 0xBB67AE85

#: Patient indices must fit one 32-bit word (numpy encodes larger spawn keys in two words).
MAX_PATIENTS = 2**32


def _int_to_words(value: int) -> list[int]:
    """Little-endian 32-bit words of a non-negative integer, as numpy's SeedSequence does."""
    if value < 0:
        raise ValueError(f"seed must be a non-negative integer, got {value}")
    words = []
    while True:
        words.append(value & _MASK32)
        value >>= 32
        if value == 0:
            return words


def _hashmix_scalar(value: int, hash_const: int) -> tuple[int, int]:
    value = (value ^ hash_const) & _MASK32
    hash_const = (hash_const * _MULT_A) & _MASK32
    value = (value * hash_const) & _MASK32
    value ^= value >> _XSHIFT
    return value, hash_const


def _mix_scalar(x: int, y: int) -> int:
    result = (_MIX_MULT_L * x - _MIX_MULT_R * y) & _MASK32
    return result ^ (result >> _XSHIFT)


def _seed_prefix(seed: int) -> tuple[list[int], int]:
    """Pool and hash constant after mixing everything but the patient's spawn key word."""
    run_entropy = _int_to_words(int(seed))
    run_entropy += [0] * max(0, _POOL_SIZE - len(run_entropy))
    hash_const = _INIT_A
    mixer = []
    for i in range(_POOL_SIZE):
        value, hash_const = _hashmix_scalar(run_entropy[i], hash_const)
        mixer.append(value)
    for i_src in range(_POOL_SIZE):
        for i_dst in range(_POOL_SIZE):
            if i_src != i_dst:
                hashed, hash_const = _hashmix_scalar(mixer[i_src], hash_const)
                mixer[i_dst] = _mix_scalar(mixer[i_dst], hashed)
    for word in run_entropy[_POOL_SIZE:]:
        for i_dst in range(_POOL_SIZE):
            hashed, hash_const = _hashmix_scalar(word, hash_const)
            mixer[i_dst] = _mix_scalar(mixer[i_dst], hashed)
    return mixer, hash_const


def patient_keys(seed: int, index: np.ndarray) -> np.ndarray:
    """Philox keys of patients ``index`` under ``seed`` (vectorised SeedSequence).

    Parameters
    ----------
    seed : int
        Trial seed, a non-negative integer of any size.
    index : ndarray of int
        Patient indices, ``0 <= index < 2**32``.

    Returns
    -------
    ndarray of uint64
        ``SeedSequence(seed, spawn_key=(i,)).generate_state(1, numpy.uint64)`` for every ``i``
        (the ``patient_seed`` stored in a cohort).
    """
    index = np.asarray(index, dtype=np.int64)
    if index.size and (index.min() < 0 or index.max() >= MAX_PATIENTS):
        raise ValueError(
            f"patient indices must lie in [0, 2**32), got {index.min()}..{index.max()}"
        )
    prefix, hash_const = _seed_prefix(seed)
    word = index.astype(np.uint32)
    pool = []
    for i_dst in range(_POOL_SIZE):
        hash_next = (hash_const * _MULT_A) & _MASK32
        hashed = (word ^ np.uint32(hash_const)) * np.uint32(hash_next)
        hashed ^= hashed >> np.uint32(_XSHIFT)
        hash_const = hash_next
        mixed = np.uint32(_MIX_MULT_L * prefix[i_dst] & _MASK32) - np.uint32(_MIX_MULT_R) * hashed
        mixed ^= mixed >> np.uint32(_XSHIFT)
        pool.append(mixed)
    # generate_state(2, uint32) reads pool[0], pool[1] with the INIT_B hash sequence.
    hash_b = _INIT_B
    words = []
    for i_dst in range(2):
        value = pool[i_dst] ^ np.uint32(hash_b)
        hash_b = (hash_b * _MULT_B) & _MASK32
        value = value * np.uint32(hash_b)
        value ^= value >> np.uint32(_XSHIFT)
        words.append(value)
    return words[0].astype(np.uint64) | (words[1].astype(np.uint64) << np.uint64(32))


def philox4x32(
    key: np.ndarray, c0: np.ndarray, c1: np.ndarray, c2: np.ndarray, c3: np.ndarray, rounds=10
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Philox4x32 block function (Salmon et al. 2011), vectorised.

    Parameters
    ----------
    key : ndarray of uint64
        64-bit keys; low word is Random123's ``key[0]``, high word ``key[1]``.
    c0, c1, c2, c3 : ndarray of integer
        Counter words (values below 2**32), broadcast against ``key``.
    rounds : int
        Number of rounds (10 is the standard, crush-resistant choice).

    Returns
    -------
    tuple of four ndarray of uint64
        Output words, each below 2**32.
    """
    mask = np.uint64(_MASK32)
    shift = np.uint64(32)
    key = np.asarray(key, dtype=np.uint64)
    k0 = key & mask
    k1 = key >> shift
    shape = np.broadcast_shapes(key.shape, *(np.shape(c) for c in (c0, c1, c2, c3)))
    x0, x1, x2, x3 = (
        np.broadcast_to(np.asarray(c, dtype=np.uint64), shape) for c in (c0, c1, c2, c3)
    )
    m0 = np.uint64(_PHILOX_M0)
    m1 = np.uint64(_PHILOX_M1)
    for r in range(rounds):
        if r:
            k0 = (k0 + np.uint64(_PHILOX_W0)) & mask
            k1 = (k1 + np.uint64(_PHILOX_W1)) & mask
        p0 = m0 * x0
        p1 = m1 * x2
        x0, x1, x2, x3 = (
            (p1 >> shift) ^ x1 ^ k0,
            p1 & mask,
            (p0 >> shift) ^ x3 ^ k1,
            p0 & mask,
        )
    return x0, x1, x2, x3


def uniforms(keys: np.ndarray, attempt: np.ndarray | int, n_draws: int) -> np.ndarray:
    """Uniform draws ``0 … n_draws-1`` of one attempt for each key.

    Parameters
    ----------
    keys : ndarray of uint64, shape (n,)
        Patient keys from :func:`patient_keys`.
    attempt : int or ndarray of int, shape (n,)
        Rejection-sampling attempt of each patient (0 for the first draw).
    n_draws : int
        Number of uniforms per patient.

    Returns
    -------
    ndarray of float64, shape (n, n_draws)
        Values in the open interval (0, 1) with 53 random bits.
    """
    n_blocks = (n_draws + 1) // 2
    keys = np.asarray(keys, dtype=np.uint64)[:, None]
    attempt = np.broadcast_to(np.asarray(attempt, dtype=np.uint64), keys.shape[:1])[:, None]
    block = np.arange(n_blocks, dtype=np.uint64)[None, :]
    w0, w1, w2, w3 = philox4x32(keys, block, attempt, 0, 0)
    out = np.empty((keys.shape[0], 2 * n_blocks), dtype=np.float64)
    scale = 1.0 / 9007199254740992.0  # 2**-53
    out[:, 0::2] = ((w0 >> np.uint64(5)) * np.uint64(67108864) + (w1 >> np.uint64(6))) + 0.5
    out[:, 1::2] = ((w2 >> np.uint64(5)) * np.uint64(67108864) + (w3 >> np.uint64(6))) + 0.5
    out *= scale
    return out[:, :n_draws]
