"""Ed25519 key pairs and key files.

Private keys live in files of their data folder (mode 0600, created exclusively), never in
the database: a database is copied for backups and support, a key must not travel with it.
The organizer's root key (`root.key`) exists only on the hub; each node has its own
`node.key`. A key id is the first 4 bytes of SHA-256 over the raw public key, as an
unsigned integer; the hub refuses to certify a key whose id is already taken, so within
one organizer a key id names exactly one key.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ROOT_KEY_FILE = "root.key"
NODE_KEY_FILE = "node.key"


def generate() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def public_bytes(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_raw: bytes) -> int:
    return int.from_bytes(hashlib.sha256(public_raw).digest()[:4], "big")


def load_public(raw: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(raw)


def write_private(path: Path, key: Ed25519PrivateKey, *, replace: bool = False) -> None:
    """Write *key* as PKCS#8 PEM with mode 0600. A new key never overwrites an old one
    unless *replace* (key rotation), and then atomically via a temporary file."""
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    target = path if not replace else path.with_suffix(".new")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    if replace and target.exists():
        target.unlink()
    fd = os.open(target, flags, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    if replace:
        os.replace(target, path)


def read_private(path: Path) -> Ed25519PrivateKey:
    if not path.exists():
        raise FileNotFoundError(f"key file {path} is missing")
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise PermissionError(f"key file {path} is readable by others (mode {mode:o}); chmod 600 it")
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 key")
    return key
