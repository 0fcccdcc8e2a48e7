"""The canonical bytes a command signature covers, and a reference signer for integrators.

The payload is canonicalised with RFC 8785 (JCS), so a signer written in any language with a
JCS library produces the same bytes: sorted by UTF-16 code units, numbers in ECMAScript form.
"""

from __future__ import annotations

import base64
from typing import Any, Final

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

DOMAIN: Final = "handoff-cmd-v1"


def signed_bytes(device_id: str, name: str, payload: dict[str, Any]) -> bytes:
    """Domain, device and command name, then the payload without `signature` in RFC 8785 form.

    Raises `rfc8785.CanonicalizationError` (a ValueError) for what JCS cannot represent, such as
    an integer beyond 2**53.
    """
    body = {key: value for key, value in payload.items() if key != "signature"}
    return f"{DOMAIN}\n{device_id}\n{name}\n".encode() + rfc8785.dumps(body)


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
