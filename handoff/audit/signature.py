"""The one signature construction of the product: Ed25519 over RFC 8785 canonical JSON of a
message without its `signature`, carried as padded base64.

Three shapes use it. Checkpoints and logoff receipts sign their `data`; `state`, `status` and
`cmd_result` sign the whole object (a top-level `signature`), and those are the same call. An
event signs the whole CloudEvent, attributes included, with only `data.signature` left out, so
that no attribute (`subject`, `source`, `type`, `time`) can be changed under a good signature.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from handoff.audit.chain import canonical


def signed_bytes(data: Mapping[str, Any]) -> bytes:
    """The bytes a top-level `signature` covers. Raises `NotCanonical` (a ValueError)."""
    return canonical({key: value for key, value in data.items() if key != "signature"})


def event_signed_bytes(event: Mapping[str, Any]) -> bytes:
    """The bytes an event's `data.signature` covers: the whole event without `data.signature`."""
    data = event.get("data")
    if not isinstance(data, Mapping):
        raise ValueError("an event's data is not an object")
    return canonical({**event, "data": {key: value for key, value in data.items() if key != "signature"}})


def encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def signature(key: Ed25519PrivateKey, data: Mapping[str, Any]) -> str:
    return encode(key.sign(signed_bytes(data)))


def event_signature(key: Ed25519PrivateKey, event: Mapping[str, Any]) -> str:
    return encode(key.sign(event_signed_bytes(event)))


def signature_ok(data: Mapping[str, Any], keys: Sequence[Ed25519PublicKey]) -> bool:
    """True when any of `keys` made `data["signature"]` over the rest of `data`."""
    try:
        body = signed_bytes(data)
    except (ValueError, TypeError):
        return False
    return signed_by(data.get("signature"), body, keys) is not None


def event_signature_ok(event: Mapping[str, Any], keys: Sequence[Ed25519PublicKey]) -> bool:
    """True when any of `keys` made the event's `data.signature` over the rest of the event."""
    return event_signer(event, keys) is not None


def event_signer(event: Mapping[str, Any], keys: Sequence[Ed25519PublicKey]) -> Ed25519PublicKey | None:
    """Which of `keys` signed the event, or None: a verifier given several keys can then hold
    one source's whole trail to one key."""
    try:
        body = event_signed_bytes(event)
    except (ValueError, TypeError):
        return None
    data = event["data"]
    return signed_by(data.get("signature"), body, keys)


def signed_by(encoded: object, body: bytes, keys: Sequence[Ed25519PublicKey]) -> Ed25519PublicKey | None:
    if not isinstance(encoded, str):
        return None
    try:
        raw = base64.b64decode(encoded, validate=True)
    except ValueError:
        return None
    for key in keys:
        try:
            key.verify(raw, body)
        except InvalidSignature:
            continue
        return key
    return None


def public_key_b64(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The 32 raw public bytes in base64, as `status.public_key` carries them."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return encode(public.public_bytes_raw())


def fingerprint(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The hex SHA-256 of the 32 raw public bytes: what biomed compares between the cart and the console."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return hashlib.sha256(public.public_bytes_raw()).hexdigest()


def signed(key: Ed25519PrivateKey | None, data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` with its top-level `signature`, or as it is when there is no key (no [audit])."""
    if key is None:
        return dict(data)
    return {**data, "signature": signature(key, data)}
