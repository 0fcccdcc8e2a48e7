"""An appliance's audit key pair laid out as `handoff provision` writes it, for tests, bench and demo."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from handoff.audit.keys import private_pem, public_pem


def write_audit_key(root: Path, key: Ed25519PrivateKey | None = None) -> tuple[Path, Path]:
    """(audit.key at mode 0600, audit.pub) in `root`: the [audit] key_file and the agent's appliance_key."""
    key = key or Ed25519PrivateKey.generate()
    private, public = root / "audit.key", root / "audit.pub"
    private.write_bytes(private_pem(key))
    private.chmod(0o600)
    public.write_bytes(public_pem(key))
    return private, public
