"""The canonical bytes a command signature covers, and a reference signer for integrators."""

from __future__ import annotations

import base64
import json
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

DOMAIN: Final = "handoff-cmd-v1"


def signed_bytes(device_id: str, name: str, payload: dict[str, Any]) -> bytes:
    body = {key: value for key, value in payload.items() if key != "signature"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"{DOMAIN}\n{device_id}\n{name}\n{canonical}".encode()


def sign_command(key: Ed25519PrivateKey, device_id: str, name: str, payload: dict[str, Any]) -> dict[str, Any]:
    signature = key.sign(signed_bytes(device_id, name, payload))
    return {**payload, "signature": base64.b64encode(signature).decode("ascii")}


def verify_signature(key: Ed25519PublicKey, device_id: str, name: str, payload: dict[str, Any]) -> bool:
    try:
        signature = base64.b64decode(str(payload.get("signature", "")), validate=True)
        key.verify(signature, signed_bytes(device_id, name, payload))
    except (InvalidSignature, ValueError):
        return False
    return True
