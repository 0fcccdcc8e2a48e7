"""Ed25519 keys in PEM files: the appliance's private signing key, and the public keys it or others trust.

A public key file may hold several keys (every appliance of a site, or an old and a new key
during a rotation): a signature is good if any of them verifies it. The same loader reads
`ledger.audit_keys`, `agent.keys_file` and `appliance.command_key_file`, each error naming
the caller's config key.

The usual files (what `handoff provision` and `openssl genpkey -algorithm ed25519` write: PKCS #8
and SubjectPublicKeyInfo, RFC 8410) have one fixed DER layout, a constant prefix then the 32 key
bytes, and are read here without `cryptography`'s serialization package: that package imports
its SSH, DSA, RSA, cipher and bcrypt modules too (0.7 MB of a running cart's resident set, 2.9 MB
in a fresh interpreter) for files read once at start. Any other layout goes to `cryptography`'s
own loader, which then decides.
"""

from __future__ import annotations

import binascii
import re
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from handoff.errors import ConfigError
from handoff.secret_file import read_private

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----(.+?)-----END \1-----", re.DOTALL)
_PKCS8_ED25519 = bytes.fromhex("302e020100300506032b657004220420")
_SPKI_ED25519 = bytes.fromhex("302a300506032b6570032100")
_KEY_BYTES = 32


def _raw_key(block: re.Match[bytes], prefix: bytes) -> bytes | None:
    """The 32 key bytes when the block's DER is `prefix` and a key, else None (for the full loader)."""
    try:
        der = binascii.a2b_base64(block.group(2))
    except binascii.Error:
        return None
    if len(der) == len(prefix) + _KEY_BYTES and der.startswith(prefix):
        return der[len(prefix) :]
    return None


def load_signing_key(path: Path, key_name: str = "audit.key_file") -> Ed25519PrivateKey:
    """Refused unless only its owner may read it: a copy of it signs as the cart (or the agent)."""
    data = read_private(path, key_name, owner_only=True)
    block = _PEM_BLOCK.search(data)
    raw = _raw_key(block, _PKCS8_ED25519) if block and block.group(1) == b"PRIVATE KEY" else None
    if raw is not None:
        return Ed25519PrivateKey.from_private_bytes(raw)
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

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
        raw = _raw_key(block, _SPKI_ED25519)
        keys.append(Ed25519PublicKey.from_public_bytes(raw) if raw is not None else _load_public(block, path, key_name))
    if not keys:
        raise ConfigError(f"{key_name}: {path} holds no PEM public key")
    return keys


def _load_public(block: re.Match[bytes], path: Path, key_name: str) -> Ed25519PublicKey:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(block.group(0))
    except ValueError:
        raise ConfigError(f"{key_name}: {path} holds a PEM public key block that does not parse") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{key_name}: {path} holds a key that is not Ed25519")
    return key


def private_pem(key: Ed25519PrivateKey) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


def public_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
