"""Logoff receipts (docs/agent.md): made and signed by the agent, checked by the appliance.

Both ends live here so that the one construction cannot drift: `data` signed with Ed25519
over its RFC 8785 JSON without `signature` (handoff.audit.signature), inside a CloudEvent.
A module of its own, outside `handoff.agent`, because the appliance checks receipts without
being an agent: the two programs share this wire format and nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from handoff.audit.signature import signature, signature_ok
from handoff.cloudevents import CLOUDEVENTS_VERSION
from handoff.core.inputs import Receipt
from handoff.timefmt import rfc3339

RECEIPT_TYPE: Final = "org.handoff.logoff_receipt"
MAX_RECEIPT_BYTES: Final = 16 * 1024


@dataclass(frozen=True)
class ActionOutcome:
    kind: str
    done: bool
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        body = {"kind": self.kind, "outcome": "done" if self.done else "failed"}
        if self.detail:
            body["detail"] = self.detail
        return body


def agent_source(site: str, agent_id: str) -> str:
    return f"urn:handoff:{site}:agent:{agent_id}"


def make_receipt(
    key: Ed25519PrivateKey,
    *,
    event: dict[str, Any],
    outcomes: Sequence[ActionOutcome],
    source: str,
    receipt_id: str,
    now: float,
) -> dict[str, Any]:
    """The receipt for `event` (a forced_logoff or checkin as received): `done` only when every
    action was."""
    facts = event["data"]
    data: dict[str, Any] = {
        "for": event["id"],
        "device_id": facts["device_id"],
        "staff_id": facts.get("staff_id"),
        "session_id": facts.get("session_id"),
        "result": "done" if outcomes and all(outcome.done for outcome in outcomes) else "failed",
        "actions": [outcome.as_dict() for outcome in outcomes],
    }
    data["signature"] = signature(key, data)
    return {
        "specversion": CLOUDEVENTS_VERSION,
        "id": receipt_id,
        "source": source,
        "type": RECEIPT_TYPE,
        "subject": facts["device_id"],
        "time": rfc3339(now),
        "datacontenttype": "application/json",
        "data": data,
    }


Refusal = Literal["malformed", "bad_signature", "wrong_device"]


def check_receipt(payload: bytes, device_id: str, keys: Sequence[Ed25519PublicKey]) -> Receipt | Refusal:
    """The core input a receipt stands for, or why it stands for nothing. Never raises: a
    forged or broken receipt must not end the appliance's loop.

    A signature that verifies under none of `keys` is `bad_signature`, whether it was made
    by an unknown key or altered on the way: Ed25519 cannot tell the two apart.
    """
    if len(payload) > MAX_RECEIPT_BYTES:
        return "malformed"
    try:
        body = json.loads(payload)
    except (ValueError, RecursionError):
        return "malformed"
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict) or body.get("type") != RECEIPT_TYPE:
        return "malformed"
    for_id, result = data.get("for"), data.get("result")
    if not isinstance(for_id, str) or result not in ("done", "failed") or not isinstance(data.get("actions"), list):
        return "malformed"
    if not signature_ok(data, keys):
        return "bad_signature"
    if data.get("device_id") != device_id or body.get("subject") != device_id:
        return "wrong_device"
    return Receipt(for_id, done=result == "done")
