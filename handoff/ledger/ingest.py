"""What one batch of broker messages does to the ledger, inside one transaction.

The consumer acknowledges the batch's messages only after this commits, so everything here
must be idempotent: a message delivered again (after a crash, or to a second ledger on a shared
subscription) finds its event already stored by `id` and changes nothing.

Custody and sessions are not copied into tables of their own: `who` and `history` read them
off the events, by device and time, so an event that arrives late (a hole filled after an
outage) is simply in the right place, and nothing derived can disagree with the record.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, and_, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from handoff.audit.chain import digest, genesis, link
from handoff.audit.signature import signature_ok
from handoff.ledger.schema import checkpoints, counters, devices, events, exceptions, receipts, sources

log = logging.getLogger("handoff.ledger")

MAX_MESSAGE_BYTES: Final = 64 * 1024
EVENT_TYPES: Final = frozenset(
    {"checkout", "checkin", "forced_logoff", "reauth", "tap_rejected", "logoff_confirmed", "logoff_unconfirmed"}
)


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes


@dataclass(frozen=True)
class Fresh:
    """An event that passed the checks: where it came from, its body, its raw text, its time."""

    where: Route
    body: dict[str, Any]
    raw: str
    at: float


@dataclass(frozen=True)
class Route:
    """Where a message came from: `P/<site>/<device>/<kind>[/<type>]`."""

    site: str
    device_id: str
    kind: str
    event_type: str | None = None


class Refused(Exception):
    """A message that cannot be stored as truth; `reason` names the counter it goes to."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def route(prefix: str, topic: str) -> Route | None:
    head = prefix.rstrip("/") + "/"
    if not topic.startswith(head):
        return None
    parts = topic[len(head) :].split("/")
    if len(parts) == 4 and parts[2] == "events":
        return Route(parts[0], parts[1], "events", parts[3])
    if len(parts) == 3 and parts[2] in ("state", "status", "receipts", "checkpoint"):
        return Route(parts[0], parts[1], parts[2])
    return None


class Recorder:
    """Applies batches to the database; the keys verify checkpoints (`ledger.audit_keys`)."""

    def __init__(self, prefix: str, audit_keys: Sequence[Ed25519PublicKey] = ()) -> None:
        self._prefix = prefix
        self._keys = audit_keys

    def apply(self, conn: Connection, batch: Iterable[Message], now: float) -> int:
        """Store what the batch holds; the number of messages refused (counted by reason)."""
        fresh: list[Fresh] = []
        refused: dict[str, int] = {}
        heard: dict[str, Route] = {}
        for message in batch:
            try:
                where = route(self._prefix, message.topic)
                if where is None:
                    raise Refused("unknown_topic")
                if len(message.payload) > MAX_MESSAGE_BYTES:
                    raise Refused("too_large")
                body = _json_object(message.payload)
                if where.kind == "events":
                    fresh.append(Fresh(where, body, message.payload.decode(), _checked_event(where, body)))
                else:
                    self._other(conn, where, body, message.payload.decode(), now)
                if where.kind != "receipts":
                    heard[where.device_id] = where
            except Refused as refusal:
                refused[refusal.reason] = refused.get(refusal.reason, 0) + 1
                log.warning("refused a message on %s: %s", message.topic, refusal.reason.replace("_", " "))
        self._events(conn, fresh, now)
        for where in heard.values():
            _upsert_device(conn, where, now, {})
        for reason, count in refused.items():
            _count(conn, reason, count)
        return sum(refused.values())

    def _other(self, conn: Connection, where: Route, body: dict[str, Any], raw: str, now: float) -> None:
        if where.kind == "state":
            values = {
                "state": _text(body.get("state")),
                "staff_id": _text(body.get("staff_id")),
                "session_id": _text(body.get("session_id")),
                "since": _time(body.get("since")),
                "seq": body.get("seq") if isinstance(body.get("seq"), int) else None,
            }
            _upsert_device(conn, where, now, values)
        elif where.kind == "status":
            status = body.get("status")
            if status not in ("online", "offline"):
                raise Refused("bad_status")
            _upsert_device(conn, where, now, {"status": status})
        elif where.kind == "receipts":
            data = body.get("data")
            if (
                not isinstance(data, dict)
                or not isinstance(body.get("id"), str)
                or not isinstance(data.get("for"), str)
            ):
                raise Refused("not_a_receipt")
            _insert_ignoring(
                conn,
                receipts,
                [
                    {
                        "id": body["id"],
                        "for_id": data["for"],
                        "device_id": where.device_id,
                        "result": str(data.get("result")),
                        "payload": raw,
                        "received": now,
                    }
                ],
            )
        else:
            self._checkpoint(conn, where, body, raw, now)

    def _checkpoint(self, conn: Connection, where: Route, body: dict[str, Any], raw: str, now: float) -> None:
        data = body.get("data")
        if not isinstance(data, dict) or not isinstance(data.get("seq"), int) or not isinstance(data.get("chain"), str):
            raise Refused("not_a_checkpoint")
        source = str(data.get("source"))
        signed = bool(self._keys) and signature_ok(data, self._keys) and body.get("source") == source
        row = {
            "id": str(body.get("id")),
            "source": source,
            "seq": data["seq"],
            "chain": data["chain"],
            "signature_ok": signed,
            "payload": raw,
            "received": now,
        }
        if not _insert_ignoring(conn, checkpoints, [row]):
            return
        held = conn.execute(select(events.c.payload).where(events.c.source == source, events.c.seq == data["seq"]))
        chains = {json.loads(payload)["data"].get("chain") for (payload,) in held}
        if self._keys and not signed:
            _open(
                conn,
                "chain_break",
                where.device_id,
                source,
                f"{source}#checkpoint{data['seq']}",
                now,
                f"checkpoint at seq {data['seq']}: signature does not verify under ledger.audit_keys",
            )
        elif chains and data["chain"] not in chains:
            _open(
                conn,
                "chain_break",
                where.device_id,
                source,
                f"{source}#checkpoint{data['seq']}",
                now,
                f"checkpoint at seq {data['seq']} names a chain no stored event has",
            )

    def _events(self, conn: Connection, fresh: list[Fresh], now: float) -> None:
        if not fresh:
            return
        ids = [item.body["id"] for item in fresh]
        known = {row[0] for row in conn.execute(select(events.c.id).where(events.c.id.in_(ids)))}
        new: dict[str, Fresh] = {}
        for item in fresh:
            if item.body["id"] not in known:
                new.setdefault(item.body["id"], item)
        if not new:
            return
        ordered = sorted(new.values(), key=lambda item: (item.body["source"], item.body["data"]["seq"]))
        _insert_ignoring(conn, events, [_row(item, now) for item in ordered])
        by_source: dict[str, list[tuple[Route, dict[str, Any]]]] = {}
        for item in ordered:
            by_source.setdefault(item.body["source"], []).append((item.where, item.body))
        for source, items in by_source.items():
            self._sequence(conn, source, items, now)
            for where, event in items:
                self._chain(conn, source, where, event, now)
                _follow(conn, where, event, now)

    def _sequence(self, conn: Connection, source: str, items: list[tuple[Route, dict[str, Any]]], now: float) -> None:
        where = items[0][0]
        seqs = [event["data"]["seq"] for _, event in items]
        row = conn.execute(select(sources).where(sources.c.source == source)).first()
        if row is None:
            first, contiguous, highest = min(seqs), min(seqs) - 1, max(seqs)
            conn.execute(
                insert(sources).values(
                    source=source,
                    site=where.site,
                    device_id=where.device_id,
                    first_seq=first,
                    contiguous_upto=contiguous,
                    max_seq=highest,
                )
            )
        else:
            first, contiguous, highest = min(row.first_seq, *seqs), row.contiguous_upto, max(row.max_seq, *seqs)
        while conn.execute(
            select(events.c.id).where(events.c.source == source, events.c.seq == contiguous + 1).limit(1)
        ).first():
            contiguous += 1
        conn.execute(
            update(sources)
            .where(sources.c.source == source)
            .values(first_seq=first, contiguous_upto=contiguous, max_seq=highest)
        )
        if highest > contiguous:
            _open(
                conn,
                "seq_gap",
                where.device_id,
                source,
                source,
                now,
                f"missing seq {contiguous + 1} (highest seen {highest})",
            )
        else:
            _close(conn, "seq_gap", source, now)

    def _chain(self, conn: Connection, source: str, where: Route, event: dict[str, Any], now: float) -> None:
        """Check this event's link, and its successor's, which may have come first."""
        seq = event["data"]["seq"]
        same = conn.execute(select(events.c.id).where(events.c.source == source, events.c.seq == seq)).all()
        if len(same) > 1:
            _open(
                conn,
                "chain_break",
                where.device_id,
                source,
                f"{source}#{seq}",
                now,
                f"seq {seq} seen under {len(same)} ids: the appliance lost events and numbered again",
            )
        self._verify(conn, source, where, seq, event, now)
        following = conn.execute(
            select(events.c.payload).where(
                events.c.source == source, events.c.seq == seq + 1, events.c.chain_ok.is_(None)
            )
        ).all()
        for (payload,) in following:
            self._verify(conn, source, where, seq + 1, json.loads(payload), now)

    def _verify(self, conn: Connection, source: str, where: Route, seq: int, event: dict[str, Any], now: float) -> None:
        if seq == 1:
            previous = [genesis(source)]
        else:
            held = conn.execute(
                select(events.c.payload).where(events.c.source == source, events.c.seq == seq - 1)
            ).all()
            previous = [json.loads(payload)["data"].get("chain") for (payload,) in held]
        if not previous:
            return
        ok = any(
            isinstance(chain, str) and link(chain, digest(event)) == event["data"].get("chain") for chain in previous
        )
        conn.execute(update(events).where(events.c.id == event["id"]).values(chain_ok=ok))
        if not ok:
            _open(
                conn,
                "chain_break",
                where.device_id,
                source,
                f"{source}#{seq}",
                now,
                f"seq {seq} does not link to seq {seq - 1}: altered, inserted or out of place",
            )


def _follow(conn: Connection, where: Route, event: dict[str, Any], now: float) -> None:
    """The exceptions one event opens or closes by itself."""
    kind, data, source = where.event_type, event["data"], event["source"]
    if kind == "logoff_unconfirmed":
        confirmed = conn.execute(
            select(events.c.id).where(events.c.type == "logoff_confirmed", events.c.for_id == data.get("for")).limit(1)
        ).first()
        if not confirmed:
            _open(
                conn,
                "logoff_unconfirmed",
                where.device_id,
                source,
                str(data.get("for")),
                now,
                f"{data.get('staff_id')}: no receipt that the session was logged off ({data.get('reason')})",
            )
    elif kind == "logoff_confirmed":
        _close(conn, "logoff_unconfirmed", str(data.get("for")), now)
    if data.get("clock_synced") is False:
        _open(conn, "clock_unsynced", where.device_id, source, source, now, "events made with an unsynchronised clock")
    elif data.get("clock_synced") is True:
        _close(conn, "clock_unsynced", source, now)


def evaluate(conn: Connection, now: float, overdue_after_s: float, offline_after_s: float, holds_many: int) -> None:
    """The exceptions that time alone opens and closes: overdue, appliance_offline, holds_many."""
    for device in conn.execute(select(devices)).all():
        held_too_long = (
            device.state in ("in_use", "locked") and device.since is not None and now - device.since > overdue_after_s
        )
        if held_too_long:
            _open(
                conn,
                "overdue",
                device.device_id,
                "",
                device.device_id,
                now,
                f"held by {device.staff_id} since {datetime.fromtimestamp(device.since).isoformat(timespec='seconds')}",
            )
        else:
            _close(conn, "overdue", device.device_id, now)
        silent = now - device.last_heard > offline_after_s
        if device.status == "offline" or silent:
            why = (
                "its last will says offline"
                if device.status == "offline"
                else f"nothing heard for {now - device.last_heard:.0f} s"
            )
            _open(conn, "appliance_offline", device.device_id, "", device.device_id, now, why)
        else:
            _close(conn, "appliance_offline", device.device_id, now)
    holders = conn.execute(
        select(devices.c.staff_id, func.count())
        .where(devices.c.state.in_(("in_use", "locked")), devices.c.staff_id.is_not(None))
        .group_by(devices.c.staff_id)
    ).all()
    many = {staff: count for staff, count in holders if count > holds_many}
    for staff, count in many.items():
        _open(conn, "holds_many", "", "", staff, now, f"{staff} holds {count} devices")
    for (key,) in conn.execute(
        select(exceptions.c.key).where(exceptions.c.type == "holds_many", exceptions.c.closed.is_(None))
    ).all():
        if key not in many:
            _close(conn, "holds_many", key, now)


def _open(conn: Connection, kind: str, device_id: str, source: str, key: str, now: float, detail: str) -> None:
    found = conn.execute(
        select(exceptions.c.id).where(exceptions.c.type == kind, exceptions.c.key == key, exceptions.c.closed.is_(None))
    ).first()
    if found is None:
        conn.execute(
            insert(exceptions).values(type=kind, device_id=device_id, source=source, key=key, opened=now, detail=detail)
        )
        log.info("exception opened: %s %s (%s)", kind, device_id or key, detail)


def _close(conn: Connection, kind: str, key: str, now: float) -> None:
    closed = conn.execute(
        update(exceptions)
        .where(and_(exceptions.c.type == kind, exceptions.c.key == key, exceptions.c.closed.is_(None)))
        .values(closed=now)
    ).rowcount
    if closed:
        log.info("exception closed: %s %s", kind, key)


def _upsert_device(conn: Connection, where: Route, now: float, values: dict[str, Any]) -> None:
    changed = conn.execute(
        update(devices).where(devices.c.device_id == where.device_id).values(last_heard=now, **values)
    ).rowcount
    if not changed:
        _insert_ignoring(
            conn, devices, [{"device_id": where.device_id, "site": where.site, "last_heard": now, **values}]
        )


def _count(conn: Connection, name: str, by: int) -> None:
    if not conn.execute(update(counters).where(counters.c.name == name).values(value=counters.c.value + by)).rowcount:
        conn.execute(insert(counters).values(name=name, value=by))


def _insert_ignoring(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> int:
    """INSERT ... ON CONFLICT DO NOTHING in the dialect at hand; how many rows went in."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return int(conn.execute(dialect.insert(table).on_conflict_do_nothing(), rows).rowcount or 0)


def _row(item: Fresh, now: float) -> dict[str, Any]:
    event, data = item.body, item.body["data"]
    return {
        "id": event["id"],
        "source": event["source"],
        "seq": data["seq"],
        "type": item.where.event_type,
        "site": item.where.site,
        "device_id": item.where.device_id,
        "staff_id": _text(data.get("staff_id")),
        "session_id": _text(data.get("session_id")),
        "reason": _text(data.get("reason")),
        "for_id": _text(data.get("for")),
        "at": item.at,
        "chain_ok": None,
        "payload": item.raw,
        "received": now,
    }


def _checked_event(where: Route, body: dict[str, Any]) -> float:
    """The event's time, once it has passed every check."""
    data = body.get("data")
    if body.get("specversion") != "1.0" or not isinstance(data, dict):
        raise Refused("not_a_cloudevent")
    for key in ("id", "source", "type", "subject", "time"):
        if not isinstance(body.get(key), str):
            raise Refused("not_a_cloudevent")
    kind = body["type"].removeprefix("org.handoff.")
    if kind not in EVENT_TYPES or not body["type"].startswith("org.handoff."):
        raise Refused("wrong_type")
    if kind != where.event_type or body["subject"] != where.device_id or data.get("device_id") != where.device_id:
        raise Refused("topic_mismatch")
    seq = data.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        raise Refused("not_a_cloudevent")
    at = _time(body["time"])
    if at is None:
        raise Refused("not_a_cloudevent")
    return at


def _json_object(payload: bytes) -> dict[str, Any]:
    try:
        body = json.loads(payload)
    except (ValueError, RecursionError):
        raise Refused("not_json") from None
    if not isinstance(body, dict):
        raise Refused("not_json")
    return body


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _time(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None
