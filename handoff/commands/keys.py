"""Loading the site's command key: the Ed25519 public key commands must be signed with."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from handoff.errors import ConfigError


def load_command_key(path: Path) -> Ed25519PublicKey:
    key_name = "appliance.command_key_file"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{key_name}: {path} cannot be read: {exc.strerror}") from None
    try:
        key = load_pem_public_key(data)
    except ValueError:
        raise ConfigError(f"{key_name}: {path} is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{key_name}: {path} is not an Ed25519 public key")
    return key
