"""Per-patient random effects for models, drawn from the cohort's ``patient_seed``.

A model that declares random effects (between-patient variability it does not explain by the
covariates, procedural variables, measurement errors) draws them here as standard normals:
one value per patient and named stream, a pure function of ``(patient_seed, stream)``. So a
patient's random effects are the same in every arm (common random numbers: the arms of a
virtual trial differ only by the device), in every batch composition and on every worker.

The generator is SplitMix64 (Steele, Lea & Flood 2014) applied to ``patient_seed`` XOR a
64-bit key of the stream name (the first 8 bytes of its SHA-256); its top 53 bits give a
uniform on the open interval (0, 1), turned into a standard normal by the inverse normal
CDF.

References
----------
Steele GL, Lea D, Flood CH. Fast splittable pseudorandom number generators. OOPSLA 2014,
doi:10.1145/2660193.2660195.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
from scipy.special import ndtri

__all__ = ["patient_normals", "patient_uniforms"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _stream_key(stream: str) -> np.uint64:
    return np.uint64(int.from_bytes(hashlib.sha256(stream.encode()).digest()[:8], "little"))


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def patient_uniforms(patient_seed: np.ndarray, stream: str) -> np.ndarray:
    """Uniforms on (0, 1), one per patient, for the named stream.

    Parameters
    ----------
    patient_seed : ndarray of uint64, shape (n,)
        The cohort's ``patient_seed`` column.
    stream : str
        Name of the random effect (e.g. ``"tavr.eoa"``); different names give independent
        streams.

    Returns
    -------
    ndarray of float64, shape (n,)

    Examples
    --------
    >>> u = patient_uniforms(np.array([1, 2, 3], dtype=np.uint64), "demo")
    >>> bool(((u > 0) & (u < 1)).all())
    True
    """
    seed = np.asarray(patient_seed).astype(np.uint64, copy=False)
    z = _splitmix64(seed ^ _stream_key(stream))
    return ((z >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53


def patient_normals(patient_seed: np.ndarray, streams: Sequence[str]) -> dict[str, np.ndarray]:
    """Standard normal random effects, one array per named stream.

    Parameters
    ----------
    patient_seed : ndarray of uint64, shape (n,)
    streams : sequence of str

    Returns
    -------
    dict of str to ndarray of float64, shape (n,)
    """
    return {s: ndtri(patient_uniforms(patient_seed, s)) for s in streams}
