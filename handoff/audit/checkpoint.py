"""Signed checkpoints: the appliance's signature over the head of its chain (SPEC section 9).

A chain alone shows that events fit together, but anyone can compute SHA-256: a forger who
rewrites the tail and recomputes every link has a chain that fits. The signed checkpoint
pins `seq` and `chain` at a moment, as a signed tree head does in certificate transparency,
so the events up to it cannot be rewritten without the appliance's key.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from handoff.cloudevents import SPECVERSION, uuid7
from handoff.timefmt import rfc3339

CHECKPOINT_TYPE: Final = "org.handoff.checkpoint"


@dataclass(frozen=True)
class CheckpointPolicy:
    """When the appliance signs: every `every` events, and at least every `seconds` while events wait."""

    key: Ed25519PrivateKey
    every: int
    seconds: float

    def due(self, unsigned: int, since_last: float) -> bool:
        return unsigned >= self.every or (unsigned > 0 and since_last >= self.seconds)


def signed_bytes(data: Mapping[str, Any]) -> bytes:
    return rfc8785.dumps({key: value for key, value in data.items() if key != "signature"})


def make_checkpoint(
    key: Ed25519PrivateKey, source: str, subject: str, seq: int, chain: str, now: float
) -> dict[str, Any]:
    data: dict[str, Any] = {"source": source, "seq": seq, "chain": chain, "time": rfc3339(now)}
    data["signature"] = base64.b64encode(key.sign(signed_bytes(data))).decode("ascii")
    return {
        "specversion": SPECVERSION,
        "id": uuid7(now),
        "source": source,
        "type": CHECKPOINT_TYPE,
        "subject": subject,
        "time": data["time"],
        "datacontenttype": "application/json",
        "data": data,
    }


def signature_ok(data: Mapping[str, Any], keys: Sequence[Ed25519PublicKey]) -> bool:
    """True when any of `keys` made `data["signature"]` over the rest of `data`."""
    try:
        signature = base64.b64decode(str(data.get("signature", "")), validate=True)
        body = signed_bytes(data)
    except (ValueError, TypeError):
        return False
    for key in keys:
        try:
            key.verify(signature, body)
        except InvalidSignature:
            continue
        return True
    return False
