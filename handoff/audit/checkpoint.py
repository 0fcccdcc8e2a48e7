"""Signed checkpoints: the appliance's signature over the head of its chain (docs/audit.md).

A chain alone shows that events fit together, but anyone can compute SHA-256: a forger who
rewrites the tail and recomputes every link has a chain that fits. The signed checkpoint
pins `seq` and `chain` at a moment, as a signed tree head does in certificate transparency,
so the events up to it cannot be rewritten without the appliance's key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from handoff.audit.keys import load_signing_key
from handoff.audit.signature import signature
from handoff.cloudevents import CLOUDEVENTS_VERSION, uuid7
from handoff.timefmt import rfc3339

if TYPE_CHECKING:
    from handoff.config import AuditConfig

CHECKPOINT_TYPE: Final = "org.handoff.checkpoint"


@dataclass(frozen=True)
class CheckpointPolicy:
    """When the appliance signs: every `every` events, and at least every `seconds` while events wait."""

    key: Ed25519PrivateKey
    every: int
    seconds: float

    def due(self, unsigned: int, since_last: float) -> bool:
        return unsigned >= self.every or (unsigned > 0 and since_last >= self.seconds)


def checkpoint_policy(audit: AuditConfig | None) -> CheckpointPolicy | None:
    """With [audit] the appliance signs its chain, its events and every other message it
    publishes, with the one key; `handoff provision` always writes one."""
    if audit is None:
        return None
    return CheckpointPolicy(load_signing_key(audit.key_file), audit.checkpoint_every, audit.checkpoint_s)


def make_checkpoint(
    key: Ed25519PrivateKey, source: str, subject: str, seq: int, chain: str, now: float
) -> dict[str, Any]:
    data: dict[str, Any] = {"source": source, "seq": seq, "chain": chain, "time": rfc3339(now)}
    data["signature"] = signature(key, data)
    return {
        "specversion": CLOUDEVENTS_VERSION,
        "id": uuid7(now),
        "source": source,
        "type": CHECKPOINT_TYPE,
        "subject": subject,
        "time": data["time"],
        "datacontenttype": "application/json",
        "data": data,
    }
