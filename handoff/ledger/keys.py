"""The key files a ledger's config names. `ledger run` loads them before it starts its MQTT
session or opens its database, so that a file at fault is one line naming its key and nothing
has started."""

from __future__ import annotations

from typing import NamedTuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from handoff.audit.keys import load_public_keys, load_signing_key
from handoff.ledger.config import LedgerConfig


class LedgerKeys(NamedTuple):
    audit: list[Ed25519PublicKey]
    """`ledger.audit_keys`: what checkpoints are verified under."""
    command: Ed25519PrivateKey | None
    """`ledger.command_key_file`: what the ledger signs its commands with, when it sends any."""


def audit_keys(config: LedgerConfig) -> list[Ed25519PublicKey]:
    files = config.ledger.audit_keys
    return load_public_keys(files, "ledger.audit_keys") if files else []


def ledger_keys(config: LedgerConfig) -> LedgerKeys:
    command = config.ledger.command_key_file
    signing = load_signing_key(command, "ledger.command_key_file") if command is not None else None
    return LedgerKeys(audit_keys(config), signing)
