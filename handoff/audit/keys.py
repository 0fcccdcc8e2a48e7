"""Ed25519 keys in PEM files: the appliance's private signing key, and the public keys it or others trust.

A public key file may hold several keys (every appliance of a site, or an old and a new key
during a rotation): a signature is good if any of them verifies it. The same loader reads
`ledger.audit_keys`, `agent.keys_file` and `appliance.command_key_file`, each error naming
the caller's config key.
"""

from __future__ import annotations

import re
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)

from handoff.errors import ConfigError
from handoff.secret_file import read_private

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.+?-----END \1-----", re.DOTALL)


def load_signing_key(path: Path, key_name: str = "audit.key_file") -> Ed25519PrivateKey:
    """Refused unless only its owner may read it: a copy of it signs as the cart (or the agent)."""
    data = read_private(path, key_name, owner_only=True)
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"{key_name}: {path} is not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{key_name}: {path} is not an Ed25519 private key")
    return key


def load_public_keys(path: Path, key_name: str) -> list[Ed25519PublicKey]:
    """Every PEM block must be an Ed25519 public key: a stray private key or certificate in the
    file is refused rather than skipped, so a botched rotation shows at start, not as refusals."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{key_name}: {path} cannot be read: {exc.strerror}") from None
    keys: list[Ed25519PublicKey] = []
    for block in _PEM_BLOCK.finditer(data):
        label = block.group(1).decode("ascii")
        if label != "PUBLIC KEY":
            raise ConfigError(f"{key_name}: {path} holds a PEM block that is not a public key ({label})")
        try:
            key = load_pem_public_key(block.group(0))
        except ValueError:
            raise ConfigError(f"{key_name}: {path} holds a PEM public key block that does not parse") from None
        if not isinstance(key, Ed25519PublicKey):
            raise ConfigError(f"{key_name}: {path} holds a key that is not Ed25519")
        keys.append(key)
    if not keys:
        raise ConfigError(f"{key_name}: {path} holds no PEM public key")
    return keys


def private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


def public_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
