"""Enrolling a device's keys, from the command line or the console, and listing who is enrolled.

Enrolling is the one act that makes the ledger believe a device, so it is written to the
console's audit trail, with the fingerprints an admin compared, whoever did it. What was kept
apart for the device before is then offered to ingest again, batch by batch as it arrived:
whatever its new key signed joins the record as if it had just come in.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, delete, func, insert, select, update

from handoff import compact_json
from handoff.audit.signature import fingerprint, public_key_b64
from handoff.ledger.anomalies import Rules
from handoff.ledger.config import LedgerConfig
from handoff.ledger.ingest import Exceptions, Message, Recorder
from handoff.ledger.schema import audit_log, enrolments, untrusted
from handoff.ledger.trust import raw_key


@dataclass(frozen=True)
class EnrolledDevice:
    device_id: str
    fingerprint: str
    agent_fingerprints: list[str]
    enrolled: float
    enrolled_by: str


@dataclass(frozen=True)
class PendingDevice:
    """Heard, not enrolled: the fingerprint its latest `status` presents (signed by that key), if any."""

    device_id: str
    key: str | None
    """The presented key, 32 raw bytes in base64."""
    kept: int

    @property
    def fingerprint(self) -> str | None:
        return fingerprint(raw_key(self.key)) if self.key is not None else None


def recorder_for(config: LedgerConfig, audit_keys: Sequence[Ed25519PublicKey]) -> Recorder:
    """Ingest as `handoff ledger run` does it, for the messages an enrolment brings in;
    `audit_keys` as `keys.audit_keys` loads them."""
    return Recorder(
        config.mqtt.topic_prefix,
        audit_keys,
        config.ledger.max_clock_skew_s,
        allow_untrusted=config.ledger.allow_untrusted,
        anomalies=Rules.of(config.ledger.anomalies),
        break_glass_per_30d=config.ledger.break_glass_per_30d,
    )


def enrol(
    conn: Connection,
    recorder: Recorder,
    device_id: str,
    key: Ed25519PublicKey,
    agent_keys: Sequence[Ed25519PublicKey],
    *,
    actor: str,
    now: float,
) -> int:
    """Enrol (or re-enrol, replacing) the device's keys; how many kept messages joined the record.
    Run it in a writing transaction (`database.writing`), as ingest is."""
    values = {
        "public_key": public_key_b64(key),
        "agent_keys": compact_json.dumps([public_key_b64(agent) for agent in agent_keys]),
        "enrolled": now,
        "enrolled_by": actor,
    }
    before = conn.execute(select(enrolments.c.public_key).where(enrolments.c.device_id == device_id)).scalar()
    if before is None:
        conn.execute(insert(enrolments).values(device_id=device_id, **values))
    else:
        conn.execute(update(enrolments).where(enrolments.c.device_id == device_id).values(**values))
    agents = ", ".join(fingerprint(agent) for agent in agent_keys) or "none"
    replaced = f"; replaces {fingerprint(raw_key(before))}" if before is not None else ""
    detail = f"{device_id}: appliance key {fingerprint(key)}; agent keys {agents}{replaced}"
    conn.execute(insert(audit_log).values(at=now, actor=actor, action="enrolled", detail=detail))
    return _bring_in(conn, recorder, device_id)


def _bring_in(conn: Connection, recorder: Recorder, device_id: str) -> int:
    """Offer the device's kept messages to ingest again, in the batches they arrived in; those
    still not believed are kept again. Sources left with nothing kept are no longer untrusted."""
    rows = conn.execute(
        select(untrusted.c.topic, untrusted.c.payload, untrusted.c.received, untrusted.c.source)
        .where(untrusted.c.device_id == device_id)
        .order_by(untrusted.c.id)
    ).all()
    if not rows:
        return 0
    conn.execute(delete(untrusted).where(untrusted.c.device_id == device_id))
    for received, batch in groupby(rows, key=lambda row: row.received):
        recorder.apply(conn, [Message(row.topic, row.payload.encode()) for row in batch], received)
    still = set(conn.execute(select(untrusted.c.source).where(untrusted.c.device_id == device_id)).scalars())
    book = Exceptions(conn, rows[-1].received)
    for source in {row.source for row in rows} - still:
        book.close("untrusted_source", source)
    left = conn.execute(select(func.count()).select_from(untrusted).where(untrusted.c.device_id == device_id))
    return len(rows) - int(left.scalar_one())


def listing(conn: Connection) -> tuple[list[EnrolledDevice], list[PendingDevice]]:
    enrolled = [
        EnrolledDevice(
            row.device_id,
            fingerprint(raw_key(row.public_key)),
            [fingerprint(raw_key(agent)) for agent in json.loads(row.agent_keys)],
            row.enrolled,
            row.enrolled_by,
        )
        for row in conn.execute(select(enrolments).order_by(enrolments.c.device_id))
    ]
    names = {device.device_id for device in enrolled}
    kept = conn.execute(
        select(untrusted.c.device_id, func.count()).group_by(untrusted.c.device_id).order_by(untrusted.c.device_id)
    ).all()
    statuses = select(untrusted.c.device_id, untrusted.c.public_key).where(
        untrusted.c.kind == "status", untrusted.c.public_key.is_not(None)
    )
    presented: dict[str, str] = {device_id: key for device_id, key in conn.execute(statuses)}
    pending = [
        PendingDevice(device_id, presented.get(device_id), count) for device_id, count in kept if device_id not in names
    ]
    return enrolled, pending
