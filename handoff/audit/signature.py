"""The one signature construction of checkpoints and logoff receipts (SPEC sections 8 and 9):
Ed25519 over the RFC 8785 JSON of `data` without `signature`, carried as padded base64."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


def signed_bytes(data: Mapping[str, Any]) -> bytes:
    return rfc8785.dumps({key: value for key, value in data.items() if key != "signature"})


def signature(key: Ed25519PrivateKey, data: Mapping[str, Any]) -> str:
    return base64.b64encode(key.sign(signed_bytes(data))).decode("ascii")


def signature_ok(data: Mapping[str, Any], keys: Sequence[Ed25519PublicKey]) -> bool:
    """True when any of `keys` made `data["signature"]` over the rest of `data`."""
    try:
        raw = base64.b64decode(str(data.get("signature", "")), validate=True)
        body = signed_bytes(data)
    except (ValueError, TypeError):
        return False
    for key in keys:
        try:
            key.verify(raw, body)
        except InvalidSignature:
            continue
        return True
    return False
