"""The wire form of an event: a CloudEvents 1.0 structured-mode JSON object (docs/integration.md).

Consumers deduplicate by `id` and detect gaps by `seq`, so `id` is a UUIDv7 (time-ordered,
unique forever) minted once when the event is made durable, and never again on resend.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Final

from handoff.core.events import Event
from handoff.timefmt import rfc3339

CLOUDEVENTS_VERSION: Final = "1.0"
CONTENT_TYPE: Final = "application/cloudevents+json; charset=utf-8"
TYPE_PREFIX: Final = "org.handoff."


@dataclass(frozen=True)
class EventContext:
    """Who made the event: the appliance's identity and whether its clock could be trusted."""

    site: str
    device_id: str
    reader_id: str
    clock_synced: bool


def source(site: str, reader_id: str) -> str:
    """The CloudEvents `source` of one appliance: consumers key `seq` by it."""
    return f"urn:handoff:{site}:{reader_id}"


def uuid7(epoch_seconds: float) -> str:
    """RFC 9562 UUID version 7: 48-bit Unix milliseconds, then 74 random bits.

    Formatted by hand: this runs in every commit, and `uuid.UUID` checks what is built right here.
    """
    millis = int(epoch_seconds * 1000) & ((1 << 48) - 1)
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis << 80) | (0x7 << 76) | ((rand >> 62) & 0xFFF) << 64 | (0b10 << 62) | (rand & ((1 << 62) - 1))
    digits = f"{value:032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def envelope(event: Event, seq: int, context: EventContext) -> dict[str, Any]:
    data: dict[str, Any] = {
        "device_id": context.device_id,
        "reader_id": context.reader_id,
        "seq": seq,
        "staff_id": event.staff_id,
        "badge_ref": event.badge_ref,
        "session_id": event.session_id,
        "reason": event.reason,
        "previous_staff_id": event.previous_staff_id,
        "handoff_id": event.handoff_id,
        "reader": event.reader,
        "clock_synced": context.clock_synced,
    }
    if event.type == "tap_rejected":
        data["staff_id"] = None
    elif event.type == "checkout":
        data["previous_logoff"] = event.previous_logoff
        data["break_glass"] = event.break_glass
    elif event.for_id is not None:
        data["for"] = event.for_id
    return {
        "specversion": CLOUDEVENTS_VERSION,
        "id": event.id,
        "source": source(context.site, context.reader_id),
        "type": TYPE_PREFIX + event.type,
        "subject": context.device_id,
        "time": rfc3339(event.time),
        "datacontenttype": "application/json",
        "data": data,
    }
