"""Ed25519 keys and signatures of submission bundles (``isct keygen``, ``isct bundle``).

A sponsor signs a bundle's index (the SHA-256 of every file in it) with a private key; a
reviewer checks the signature with the public key the sponsor handed over out of band
(``isct replay --pubkey``). Keys are PEM files: PKCS#8 for the private key (written with
mode 0600), SubjectPublicKeyInfo for the public key.

References
----------
Bernstein, D. J. et al. (2012). High-speed high-security signatures. Journal of
Cryptographic Engineering 2, 77-89. https://doi.org/10.1007/s13389-012-0027-1
Josefsson, S., Liusvaara, I. (2017). Edwards-Curve Digital Signature Algorithm (EdDSA).
RFC 8032. https://doi.org/10.17487/RFC8032
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import IsctError, SignatureError

__all__ = [
    "fingerprint",
    "keygen",
    "load_private_key",
    "load_public_key",
    "public_pem",
    "sign",
    "verify_signature",
]


def keygen(private_path: str | os.PathLike, *, force: bool = False) -> tuple[Path, Path]:
    """Write a new Ed25519 key pair: ``private_path`` and ``private_path + ".pub"``.

    Parameters
    ----------
    private_path : str or path
        Where the private key goes (PEM, PKCS#8, unencrypted, mode 0600).
    force : bool, default False
        Overwrite existing files.

    Returns
    -------
    (Path, Path)
        The private and the public key files.

    Raises
    ------
    IsctError
        If a file exists and ``force`` is False.
    """
    private = Path(private_path)
    public = private.with_name(private.name + ".pub")
    for p in (private, public):
        if p.exists() and not force:
            raise IsctError(f"{p}: exists; choose another name or pass --force to overwrite it")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    private.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    public.write_bytes(public_pem(key.public_key()))
    return private, public


def public_pem(key: Ed25519PublicKey) -> bytes:
    """The public key as PEM (SubjectPublicKeyInfo)."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_private_key(path: str | os.PathLike) -> Ed25519PrivateKey:
    """Read an Ed25519 private key (PEM); the error names the file and what is expected."""
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as err:
        raise IsctError(f"{path}: not a readable unencrypted PEM private key ({err})") from err
    if not isinstance(key, Ed25519PrivateKey):
        raise IsctError(f"{path}: an Ed25519 private key is needed (isct keygen makes one)")
    return key


def load_public_key(data: bytes, source: str) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM bytes; ``source`` names where they came from."""
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as err:
        raise SignatureError(f"{source}: not a PEM public key ({err})") from err
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError(f"{source}: an Ed25519 public key is needed")
    return key


def fingerprint(key: Ed25519PublicKey) -> str:
    """SHA-256 of the raw public key, hex: what a reviewer compares with the sponsor's."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def sign(data: bytes, key: Ed25519PrivateKey) -> bytes:
    """The 64-byte Ed25519 signature of ``data``."""
    return key.sign(data)


def verify_signature(data: bytes, signature: bytes, key: Ed25519PublicKey, what: str) -> None:
    """Raise :class:`SignatureError` naming ``what`` and the key unless the signature holds."""
    try:
        key.verify(signature, data)
    except InvalidSignature:
        raise SignatureError(
            f"{what}: the signature does not verify with the key {fingerprint(key)[:16]}…; "
            "the bundle was changed after signing, or signed with another key"
        ) from None
