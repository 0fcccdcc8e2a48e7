"""What one batch of broker messages does to the ledger, inside one transaction.

The consumer acknowledges the batch's messages only after this commits, so everything here
must be idempotent: a message delivered again (after a crash, or to a second ledger on a shared
subscription) finds its event already stored by `id` and changes nothing.

Custody and sessions are not copied into tables of their own: `who` and `history` read them
off the events, by device and time, so an event that arrives late (a hole filled after an
outage) is simply in the right place, and nothing derived can disagree with the record.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Final, NamedTuple, get_args

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    Select,
    String,
    and_,
    any_,
    bindparam,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from handoff.audit.chain import NotCanonical, digest, digest_of_signed, genesis, link
from handoff.audit.signature import event_signed_bytes, signature_ok
from handoff.core.events import EventType
from handoff.ledger import break_glass, custody, trust
from handoff.ledger.anomalies import Rules, Seen
from handoff.ledger.anomaly_watch import read, watch
from handoff.ledger.database import insert_rows
from handoff.ledger.holders import Change, update_holders
from handoff.ledger.limits import DoesNotFit, check
from handoff.ledger.queries import HELD, RECEIPTS, SESSION, offline, overdue
from handoff.ledger.responses import answered
from handoff.ledger.schema import checkpoints, counters, devices, events, exceptions, receipts, sources

log = logging.getLogger("handoff.ledger")

MAX_MESSAGE_BYTES: Final = 64 * 1024
RFC3339: Final = re.compile(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)")
DEFAULT_MAX_CLOCK_SKEW_S: Final = 300.0
DEFAULT_BREAK_GLASS_PER_30D: Final = 2
EVENT_TYPES: Final = frozenset(get_args(EventType))
"""The appliance's own list: an event type it learns is one the ledger stores, never refused as unknown."""


class Message(NamedTuple):
    topic: str
    payload: bytes


class Route(NamedTuple):
    """Where a message came from: `P/<site>/<device>/<kind>[/<type>]`."""

    site: str
    device_id: str
    kind: str
    event_type: str | None = None


class Fresh(NamedTuple):
    """An event that passed the checks: where it came from, its body, its raw text, its time and
    seq; as it arrived, the columns it brings, the bytes its signature covers and its digest for
    the chain, all worked out once from one canonical encoding (None where that cannot be done).

    This and the other records made for every message of a batch are named tuples: a frozen
    dataclass sets each field through `object.__setattr__`, several times the cost of a tuple's."""

    where: Route
    body: dict[str, Any]
    raw: str
    at: float
    seq: int
    columns: dict[str, Any]
    signed: bytes | None = None
    digest: bytes | None = None


class Refused(Exception):
    """A message that cannot be stored as truth; `reason` names the counter it goes to."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Parsed(NamedTuple):
    """A message that passed the checks before trust: its place in the batch, where it came
    from, its body, and the event it holds if it is one."""

    place: int
    message: Message
    where: Route
    body: dict[str, Any]
    event: Fresh | None

    def judged(self) -> trust.Judged:
        signed = self.event.signed if self.event is not None else None
        return trust.Judged(self.where.kind, self.where.site, self.where.device_id, self.body, signed)


@dataclass(frozen=True)
class Ahead:
    """A batch read while the one before it is written: each message parsed or why it is
    refused, by its place in the batch, and the verdicts on the parsed ones' signatures under
    `enrolment` (None when nothing is verified)."""

    read: list[Parsed | Refused | DoesNotFit]
    enrolment: trust.Enrolment | None
    verdicts: dict[int, bool | None]


def _parsed(prefix: str, message: Message) -> tuple[Route, dict[str, Any], Fresh | None]:
    """The checks that come before trust: a message no column could hold is refused here,
    signed or not, so that neither the untrusted table nor the batch can fail on it. Raises
    `Refused` or `DoesNotFit`."""
    where = route(prefix, message.topic)
    if where is None:
        raise Refused("unknown_topic")
    if len(message.payload) > MAX_MESSAGE_BYTES:
        raise Refused("too_large")
    body = _json_object(message.payload)
    _device_fits(where.device_id, where.site)
    event = None
    if where.kind == "events":
        event = _fresh(where, body, message.payload.decode())
    elif where.kind in ("state", "status"):
        check(devices, _presence(where.kind, body))
    elif where.kind == "receipts":
        check(receipts, _receipt(where, body))
    elif where.kind == "cmd_result":
        _command_result(body)
    else:
        fields = _checkpoint_fields(body)
        check(checkpoints, fields)
        check(exceptions, {"source": fields["source"], "key": _checkpoint_key(fields)})
    return where, body, event


@lru_cache(maxsize=4096)
def _device_fits(device_id: str, site: str) -> None:
    """Every message's topic names a device and a site, and a fleet has a few hundred of them:
    each pair is checked once (a pair that does not fit raises, and is not remembered)."""
    check(devices, {"device_id": device_id, "site": site})


def _fresh(where: Route, body: dict[str, Any], raw: str) -> Fresh:
    at = _checked_event(where, body)
    signed, event_digest = _encoded(body)
    return Fresh(where, body, raw, at, body["data"]["seq"], _fitting(where, body, raw, at), signed, event_digest)


def _encoded(body: dict[str, Any]) -> tuple[bytes | None, bytes | None]:
    """The bytes the event's signature covers, and its digest cut out of them: one canonical
    encoding for both, which were each as much CPU as parsing the message."""
    try:
        signed = event_signed_bytes(body)
    except (ValueError, TypeError):
        return None, None
    return signed, digest_of_signed(signed, body["data"].get("chain"))


def _receipt(where: Route, body: dict[str, Any]) -> dict[str, Any]:
    """The receipt's columns that come from the message itself."""
    data = body.get("data")
    if not isinstance(data, dict) or not isinstance(body.get("id"), str) or not isinstance(data.get("for"), str):
        raise Refused("not_a_receipt")
    return {"id": body["id"], "for_id": data["for"], "device_id": where.device_id, "result": str(data.get("result"))}


def _command_result(body: dict[str, Any]) -> str:
    """The id of the command a `cmd_result` answers."""
    if not isinstance(body.get("id"), str):
        raise Refused("not_a_cmd_result")
    return str(body["id"])


def _checkpoint_fields(body: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint's columns that come from the message itself."""
    data = body.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("seq"), int) or not isinstance(data.get("chain"), str):
        raise Refused("not_a_checkpoint")
    return {"id": str(body.get("id")), "source": str(data.get("source")), "seq": data["seq"], "chain": data["chain"]}


def _checkpoint_key(fields: dict[str, Any]) -> str:
    return f"{fields['source']}#checkpoint{fields['seq']}"


def route(prefix: str, topic: str) -> Route | None:
    head = prefix.rstrip("/") + "/"
    if not topic.startswith(head):
        return None
    parts = topic[len(head) :].split("/")
    if len(parts) == 4 and parts[2] == "events":
        return Route(parts[0], parts[1], "events", parts[3])
    if len(parts) == 3 and parts[2] in ("state", "status", "receipts", "checkpoint", "cmd_result"):
        return Route(parts[0], parts[1], parts[2])
    return None


class Recorder:
    """Applies batches to the database; the keys verify checkpoints (`ledger.audit_keys`); an
    event whose time is further than `max_clock_skew_s` from when it was received opens
    `clock_skew`; `anomalies` are the rules its new trusted events are checked against.
    `allow_untrusted` believes every message, signed or not (a lab bench).
    `break_glass_per_30d`: the uses per staff member over 30 days beyond which a break-glass
    review says the use is over the limit."""

    def __init__(
        self,
        prefix: str,
        audit_keys: Sequence[Ed25519PublicKey] = (),
        max_clock_skew_s: float = DEFAULT_MAX_CLOCK_SKEW_S,
        *,
        allow_untrusted: bool = False,
        anomalies: Rules | None = None,
        break_glass_per_30d: int = DEFAULT_BREAK_GLASS_PER_30D,
    ) -> None:
        self._prefix = prefix
        self._keys = audit_keys
        self._max_skew = max_clock_skew_s
        self._allow_untrusted = allow_untrusted
        self._anomalies = anomalies if anomalies is not None and anomalies.active else None
        self._break_glass_limit = break_glass_per_30d

    def verify_ahead(self, engine: Engine, batch: Sequence[Message]) -> Future[Ahead] | None:
        """Start reading a batch, and verifying its signatures against the enrolments as they are
        now, while the batch before it is written: verifying is as much CPU as the rest of ingest,
        and it runs (without the GIL) while the writing waits on the database. `apply` takes the
        messages as read here, and the verdicts only if the enrolments have not changed meanwhile."""
        if not batch:
            return None
        enrolment = None
        if not self._allow_untrusted:
            with engine.connect() as conn:
                enrolment = trust.enrolment(conn)
        return trust.ahead(lambda: self._ahead(batch, enrolment))

    def _ahead(self, batch: Sequence[Message], enrolment: trust.Enrolment | None) -> Ahead:
        read = self._read(batch)
        if enrolment is None:
            return Ahead(read, None, {})
        parsed = [entry for entry in read if isinstance(entry, Parsed)]
        verdicts = trust.judge_batch([entry.judged() for entry in parsed], enrolment.keys)
        return Ahead(read, enrolment, {entry.place: ok for entry, ok in zip(parsed, verdicts, strict=True)})

    def _read(self, batch: Sequence[Message]) -> list[Parsed | Refused | DoesNotFit]:
        """Each message parsed, or why it is refused."""
        read: list[Parsed | Refused | DoesNotFit] = []
        for place, message in enumerate(batch):
            try:
                read.append(Parsed(place, message, *_parsed(self._prefix, message)))
            except (Refused, DoesNotFit) as refusal:
                read.append(refusal.with_traceback(None))
        return read

    def apply(self, conn: Connection, batch: Sequence[Message], now: float, ahead: Future[Ahead] | None = None) -> int:
        """Store what the batch holds; the number of messages refused (counted by reason).
        `ahead`: the batch as `verify_ahead` read it."""
        book = Exceptions(conn, now)
        fresh: list[Fresh] = []
        refused: dict[str, int] = {}
        heard: dict[str, tuple[Route, dict[str, Any]]] = {}
        """Each device's latest state and status in this batch: one write per device, not per message."""
        early = ahead.result() if ahead is not None else None
        parsed: list[Parsed] = []
        for message, entry in zip(batch, early.read if early is not None else self._read(batch), strict=True):
            if isinstance(entry, Parsed):
                parsed.append(entry)
            else:
                refused[entry.reason] = refused.get(entry.reason, 0) + 1
                log.warning("refused a message on %r: %s", message.topic[:300], entry)
        for _, message, where, body, event in self._believed(conn, book, parsed, refused, now, early):
            try:
                if event is not None:
                    fresh.append(event)
                elif where.kind in ("state", "status"):
                    _, values = heard.get(where.device_id, (where, {}))
                    heard[where.device_id] = (where, {**values, **_presence(where.kind, body)})
                else:
                    self._other(conn, book, where, body, message.payload.decode())
                if where.kind != "receipts" and where.device_id not in heard:
                    heard[where.device_id] = (where, {})
            except (Refused, DoesNotFit) as refusal:
                refused[refusal.reason] = refused.get(refusal.reason, 0) + 1
                log.warning("refused a message on %r: %s", message.topic[:300], refusal)
        new = self._events(conn, fresh, book)
        _upsert_devices(conn, list(heard.values()), now)
        seen = [_seen(item) for item in new] if self._anomalies is not None else []
        before = read(conn, self._anomalies, seen) if self._anomalies is not None and seen else None
        update_holders(conn, _changes(new))
        custody.keep(conn, _touched(new))
        if self._anomalies is not None and before is not None:
            watch(conn, book, self._anomalies, seen, before)
        for reason, times in refused.items():
            count(conn, reason, times)
        return sum(refused.values())

    def _believed(
        self,
        conn: Connection,
        book: Exceptions,
        parsed: list[Parsed],
        refused: dict[str, int],
        now: float,
        early: Ahead | None,
    ) -> list[Parsed]:
        """The messages signed by their device's enrolled key; the others are kept apart (trust.py)."""
        if self._allow_untrusted or not parsed:
            return parsed
        enrolment = trust.enrolment(conn)
        if early is not None and early.enrolment == enrolment:
            verdicts = [early.verdicts[entry.place] for entry in parsed]
        else:
            verdicts = trust.judge_batch([entry.judged() for entry in parsed], enrolment.keys)
        doubted = [
            trust.kept(entry.judged(), entry.message.topic, entry.message.payload)
            for entry, ok in zip(parsed, verdicts, strict=True)
            if ok is False
        ]
        if doubted:
            refused["untrusted"] = len(doubted)
            if dropped := trust.keep(conn, book, doubted, enrolment.keys.keys(), now):
                refused["untrusted_dropped"] = dropped
        return [entry for entry, ok in zip(parsed, verdicts, strict=True) if ok is True]

    def _other(self, conn: Connection, book: Exceptions, where: Route, body: dict[str, Any], raw: str) -> None:
        if where.kind == "receipts":
            _insert_ignoring(conn, receipts, [{**_receipt(where, body), "payload": raw, "received": book.now}])
        elif where.kind == "cmd_result":
            answered(conn, where.device_id, body, raw, book.now)
        else:
            self._checkpoint(conn, book, where, body, raw)

    def _checkpoint(self, conn: Connection, book: Exceptions, where: Route, body: dict[str, Any], raw: str) -> None:
        fields = _checkpoint_fields(body)
        data, source, key = body["data"], fields["source"], _checkpoint_key(fields)
        signed = bool(self._keys) and signature_ok(data, self._keys) and body.get("source") == source
        row = {**fields, "signature_ok": signed, "payload": raw, "received": book.now}
        if not _insert_ignoring(conn, checkpoints, [row]):
            return
        held = conn.execute(select(events.c.payload).where(events.c.source == source, events.c.seq == data["seq"]))
        chains = {orjson.loads(payload)["data"].get("chain") for (payload,) in held}
        if self._keys and not signed:
            detail = f"checkpoint at seq {data['seq']}: signature does not verify under ledger.audit_keys"
            book.open("chain_break", where.device_id, source, key, detail)
        elif chains and data["chain"] not in chains:
            detail = f"checkpoint at seq {data['seq']} names a chain no stored event has"
            book.open("chain_break", where.device_id, source, key, detail)

    def _events(self, conn: Connection, fresh: list[Fresh], book: Exceptions) -> list[Fresh]:
        """Store the new events; those that were new, by source and seq."""
        if not fresh:
            return []
        ids = [item.body["id"] for item in fresh]
        known = _stored(conn, ids)
        new: dict[str, Fresh] = {}
        for item in fresh:
            first = known.get(item.body["id"]) or new.get(item.body["id"])
            if first is None:
                new[item.body["id"]] = item
            elif first is not item and first.body != item.body:
                _conflict(conn, book, item)
        if not new:
            return []
        ordered = sorted(new.values(), key=lambda item: (item.body["source"], item.body["data"]["seq"]))
        by_source: dict[str, list[Fresh]] = {}
        for item in ordered:
            by_source.setdefault(item.body["source"], []).append(item)
        _Sources(conn, book, self._max_skew).take(by_source)
        for item in ordered:
            _follow(conn, book, item.where, item.body, self._break_glass_limit)
        for items in by_source.values():
            _clock(book, items)
        return ordered


def _changes(new: list[Fresh]) -> list[Change]:
    """The new events that may change who holds a device."""
    return [
        Change(
            item.where.device_id,
            kind,
            _text(data.get("staff_id")),
            _text(data.get("session_id")),
            item.at,
            item.seq,
        )
        for item in new
        if (kind := item.where.event_type) in SESSION and (data := item.body["data"])
    ]


def _touched(new: list[Fresh]) -> list[custody.Touched]:
    """The new events that may change a device's custody intervals: session events and receipts."""
    return [
        custody.Touched(item.where.device_id, kind, item.at, _text(item.body["data"].get("for")))
        for item in new
        if (kind := item.where.event_type) is not None and (kind in SESSION or kind in RECEIPTS)
    ]


def _seen(item: Fresh) -> Seen:
    data = item.body["data"]
    return Seen(
        item.body["id"],
        str(item.where.event_type),
        item.where.site,
        item.where.device_id,
        _text(data.get("staff_id")),
        _text(data.get("session_id")),
        item.at,
    )


class Near(NamedTuple):
    """An event of a batch's source, stored or new in the batch, with its `at` and its digest
    when known (`Fresh.digest`)."""

    id: str
    body: dict[str, Any]
    chain_ok: bool | None
    at: float
    digest: bytes | None


Held = dict[int, list[Near]]
"""One source's events around a batch's by seq."""


class _Sources:
    """The sources of a batch, and their stored events around its new ones, read in two queries
    for the whole batch: enough to check every new link (and those of events that came before
    their predecessors) and to move each watermark below which every seq is present."""

    def __init__(self, conn: Connection, book: Exceptions, max_skew_s: float) -> None:
        self._conn, self._book, self._max_skew = conn, book, max_skew_s

    def take(self, by_source: dict[str, list[Fresh]]) -> None:
        """Check the new events' links against each other and the stored ones, store them with
        that result (the links of stored events that waited for one of these are updated), and
        move the watermarks."""
        conn = self._conn
        rows = {row.source: row for row in conn.execute(select(sources).where(sources.c.source.in_(list(by_source))))}
        held: dict[str, Held] = {}
        for event_id, source, seq, payload, chain_ok, at in conn.execute(_around(conn, by_source)):
            near = Near(event_id, orjson.loads(payload), chain_ok, at, None)
            held.setdefault(source, {}).setdefault(seq, []).append(near)
        for source, items in by_source.items():
            for item in items:
                near = Near(item.body["id"], item.body, None, item.at, item.digest)
                held.setdefault(source, {}).setdefault(item.seq, []).append(near)
        checked: dict[str, bool] = {}
        for source, items in by_source.items():
            checked.update(self._links(source, items, held[source]))
        skews = {}
        for source, items in by_source.items():
            skews.update(self._skews(items, held[source]))
        new = [item for items in by_source.values() for item in items]
        values = [_row(item, checked.pop(item.body["id"], None), self._book.now) for item in new]
        for row in values:
            row["clock_skew_s"] = skews.get(row["id"])
        _insert_events(conn, values)
        if checked:
            conn.execute(
                update(events).where(events.c.id == bindparam("event_id")).values(chain_ok=bindparam("ok")),
                [{"event_id": event_id, "ok": ok} for event_id, ok in checked.items()],
            )
        marks = [self._watermark(source, items, rows.get(source), held[source]) for source, items in by_source.items()]
        if fresh := [mark for mark in marks if mark["source"] not in rows]:
            conn.execute(insert(sources), fresh)
        if known := [{**mark, "key": mark["source"]} for mark in marks if mark["source"] in rows]:
            conn.execute(
                update(sources)
                .where(sources.c.source == bindparam("key"))
                .values(
                    first_seq=bindparam("first_seq"),
                    contiguous_upto=bindparam("contiguous_upto"),
                    max_seq=bindparam("max_seq"),
                ),
                [{key: mark[key] for key in ("key", "first_seq", "contiguous_upto", "max_seq")} for mark in known],
            )

    def _skews(self, items: list[Fresh], by_seq: Held) -> dict[str, float]:
        """How far off each new event's time is, by id, for those off: behind its predecessor in
        seq (a clock stepped back), or further than the bound from when the ledger received it.
        Custody follows seq, so such an event is still in its place; answers resting on it say
        so, and `clock_skew` names the device."""
        now, off = self._book.now, {}
        for item in items:
            backwards = max((near.at - item.at for near in by_seq.get(item.seq - 1, [])), default=0.0)
            if backwards > 0:
                detail = (
                    f"seq {item.seq} is stamped {backwards:.0f} s before seq {item.seq - 1}: its clock ran backwards"
                )
                off[item.body["id"]] = -backwards
            elif abs(item.at - now) > self._max_skew:
                ahead = item.at - now
                side = "ahead of" if ahead > 0 else "behind"
                detail = f"seq {item.seq} is stamped {abs(ahead):.0f} s {side} when the ledger received it"
                off[item.body["id"]] = ahead
            else:
                continue
            where = item.where
            self._book.open("clock_skew", where.device_id, item.body["source"], item.body["source"], detail)
        return off

    def _links(self, source: str, items: list[Fresh], by_seq: Held) -> dict[str, bool]:
        """Whether each new event, and each stored one next after a new one that was still
        waiting for it, links to the event before it; by id."""
        mine = {item.body["id"] for item in items}
        device = items[0].where.device_id
        checked = {}
        for seq in sorted({item.seq for item in items} | {item.seq + 1 for item in items}):
            for near in by_seq.get(seq, []):
                event_id = near.id
                if event_id in mine or near.chain_ok is None:
                    ok = _link_ok(source, seq, near, by_seq)
                    if ok is not None:
                        checked[event_id] = ok
                    if ok is False:
                        detail = f"seq {seq} does not link to seq {seq - 1}: altered, inserted or out of place"
                        self._book.open("chain_break", device, source, f"{source}#{seq}", detail)
            if len(by_seq.get(seq, [])) > 1 and any(near.id in mine for near in by_seq[seq]):
                detail = f"seq {seq} seen under {len(by_seq[seq])} ids: the appliance lost events and numbered again"
                self._book.open("chain_break", device, source, f"{source}#{seq}", detail)
        return checked

    def _watermark(self, source: str, items: list[Fresh], row: Any, by_seq: Held) -> dict[str, Any]:
        seqs = [item.seq for item in items]
        contiguous = row.contiguous_upto if row is not None else min(seqs) - 1
        before = row.max_seq if row is not None else contiguous
        while contiguous + 1 in by_seq:
            contiguous += 1
        if contiguous < before:
            above = select(events.c.seq).where(events.c.source == source, events.c.seq > contiguous)
            present = set(self._conn.execute(above).scalars())
            while contiguous + 1 in present:
                contiguous += 1
        highest = max(before, *seqs)
        first = min(row.first_seq if row is not None else min(seqs), *seqs)
        where = items[0].where
        if highest > contiguous:
            detail = f"missing seq {contiguous + 1} (highest seen {highest})"
            self._book.open("seq_gap", where.device_id, source, source, detail)
        else:
            self._book.close("seq_gap", source)
        return {
            "source": source,
            "site": where.site,
            "device_id": where.device_id,
            "first_seq": first,
            "contiguous_upto": contiguous,
            "max_seq": highest,
        }


def _around(conn: Connection, by_source: dict[str, list[Fresh]]) -> Select[Any]:
    """The stored events of each source from just before its first new seq to just after its
    last. On PostgreSQL joined to the spans as arrays: one statement text whatever the batch
    holds, which psycopg parses once, where an OR of one range per source was built, keyed
    and compiled again for every batch (see `_stored`)."""
    columns = (events.c.id, events.c.source, events.c.seq, events.c.payload, events.c.chain_ok, events.c.at)
    spans = [(source, items[0].seq - 1, items[-1].seq + 1) for source, items in by_source.items()]
    if conn.dialect.name != "postgresql":
        return select(*columns).where(
            or_(*(and_(events.c.source == source, events.c.seq.between(low, high)) for source, low, high in spans))
        )
    names, lows, highs = (list(column) for column in zip(*spans, strict=True))
    span = (
        func.unnest(
            literal(names, postgresql.ARRAY(String)),
            literal(lows, postgresql.ARRAY(BigInteger)),
            literal(highs, postgresql.ARRAY(BigInteger)),
        )
        .table_valued("source", "low", "high")
        .render_derived()
    )
    joined = and_(events.c.source == span.c.source, events.c.seq.between(span.c.low, span.c.high))
    return select(*columns).join_from(events, span, joined)


def _link_ok(source: str, seq: int, near: Near, by_seq: Held) -> bool | None:
    """Whether the event links to the one before it; None while that one is not here."""
    body = near.body
    if seq == 1:
        previous = [genesis(source)]
    else:
        previous = [before.body.get("data", {}).get("chain") for before in by_seq.get(seq - 1, [])]
    if not previous:
        return None
    try:
        event_digest = near.digest if near.digest is not None else digest(body)
    except NotCanonical:
        return False
    return any(isinstance(chain, str) and link(chain, event_digest) == body["data"].get("chain") for chain in previous)


def _follow(conn: Connection, book: Exceptions, where: Route, event: dict[str, Any], break_glass_limit: int) -> None:
    """The exceptions one event opens or closes: a break-glass use opens its review; a logoff
    confirmation closes only its own device's, so that one device's events never settle another's."""
    kind, data, source = where.event_type, event["data"], event["source"]
    key = _logoff_key(where, data)
    if kind == "break_glass":
        staff_id = _text(data.get("staff_id"))
        uses = break_glass.uses_within(conn, staff_id, _time(event["time"]) or book.now)
        line = break_glass.detail(staff_id, _text(data.get("reason")), uses, break_glass_limit)
        book.open(break_glass.KIND, where.device_id, source, break_glass.key(event["id"]), line)
    elif kind == "logoff_unconfirmed":
        confirmed = conn.execute(
            select(events.c.id)
            .where(
                events.c.type == "logoff_confirmed",
                events.c.device_id == where.device_id,
                events.c.for_id == data.get("for"),
            )
            .limit(1)
        ).first()
        if not confirmed:
            detail = f"{data.get('staff_id')}: no receipt that the session was logged off ({data.get('reason')})"
            book.open("logoff_unconfirmed", where.device_id, source, key, detail)
    elif kind == "logoff_confirmed":
        book.close("logoff_unconfirmed", key)


def _logoff_key(where: Route, data: dict[str, Any]) -> str:
    """A logoff exception's key names the device, so that only its own confirmation closes it."""
    return f"{where.device_id}:{data.get('for')}"


def _fitting(where: Route, body: dict[str, Any], raw: str, at: float) -> dict[str, Any]:
    """The columns the event brings, once everything in them fits its column, the exception
    keys built from them included. What the ledger adds itself (when it received the event,
    the chain's verdict) is its own, so the check gives the same answer whenever it runs."""
    row = _brought(where, body, raw, at)
    check(events, row)
    keys = [f"{row['source']}#{row['seq']}"]
    if where.event_type == "break_glass":
        keys.append(break_glass.key(row["id"]))
    if where.event_type in ("logoff_unconfirmed", "logoff_confirmed"):
        keys.append(_logoff_key(where, body["data"]))
    for key in keys:
        check(exceptions, {"device_id": row["device_id"], "source": row["source"], "key": key})
    return row


def _conflict(conn: Connection, book: Exceptions, item: Fresh) -> None:
    """Another message with a stored event's id and other content: the first copy stays the
    record, and the conflict is counted and opens an exception, since one of the two is not what
    the appliance sent."""
    event_id, source = item.body["id"], item.body["source"]
    count(conn, "duplicate_conflict", 1)
    detail = f"event {event_id} arrived again with other content; the first copy is kept"
    book.open("duplicate_conflict", item.where.device_id, source, event_id, detail)


def _clock(book: Exceptions, items: list[Fresh]) -> None:
    """clock_unsynced opens when an event was made with an unsynchronised clock and closes
    once the appliance's latest event says its clock is synchronised again."""
    last = items[-1]
    source = last.body["source"]
    if any(item.body["data"].get("clock_synced") is False for item in items):
        detail = "events made with an unsynchronised clock"
        book.open("clock_unsynced", last.where.device_id, source, source, detail)
    if last.body["data"].get("clock_synced") is True:
        book.close("clock_unsynced", source)


def evaluate(conn: Connection, now: float, overdue_after_s: float, offline_after_s: float, holds_many: int) -> None:
    """The exceptions that time alone opens and closes: overdue, appliance_offline, holds_many."""
    book = Exceptions(conn, now)
    for device in conn.execute(select(devices)).all():
        if overdue(device.state, device.since, now, overdue_after_s):
            since = datetime.fromtimestamp(device.since, UTC).isoformat(timespec="seconds")
            book.open("overdue", device.device_id, "", device.device_id, f"held by {device.staff_id} since {since}")
        else:
            book.close("overdue", device.device_id)
        if offline(device.status, device.last_heard, now, offline_after_s):
            why = (
                "its last will says offline"
                if device.status == "offline"
                else f"nothing heard for {now - device.last_heard:.0f} s"
            )
            book.open("appliance_offline", device.device_id, "", device.device_id, why)
        else:
            book.close("appliance_offline", device.device_id)
    holders = conn.execute(
        select(devices.c.staff_id, func.count())
        .where(devices.c.state.in_(HELD), devices.c.staff_id.is_not(None))
        .group_by(devices.c.staff_id)
    ).all()
    many = {staff: count for staff, count in holders if count > holds_many}
    for staff, count in many.items():
        book.open("holds_many", "", "", staff, f"{staff} holds {count} devices")
        book.restate("holds_many", staff, f"{staff} holds {count} devices")
    for key in book.open_keys("holds_many") - set(many):
        book.close("holds_many", key)


class Exceptions:
    """The open exceptions, read once per batch, so that the many events that change nothing
    (a gap that was not open, a clock that was synchronised) cost no statement."""

    def __init__(self, conn: Connection, now: float) -> None:
        self._conn, self.now = conn, now
        query = select(exceptions.c.type, exceptions.c.key).where(exceptions.c.closed.is_(None))
        self._open = {(kind, key) for kind, key in conn.execute(query)}

    def open_keys(self, kind: str) -> set[str]:
        return {key for open_kind, key in self._open if open_kind == kind}

    def open(self, kind: str, device_id: str, source: str, key: str, detail: str) -> int | None:
        """The new exception's id; None when one of this kind and key is open already."""
        if (kind, key) in self._open:
            return None
        made = self._conn.execute(
            insert(exceptions)
            .values(type=kind, device_id=device_id, source=source, key=key, opened=self.now, detail=detail)
            .returning(exceptions.c.id)
        )
        self._open.add((kind, key))
        log.info("exception opened: %s %s (%s)", kind, device_id or key, detail)
        return int(made.scalar_one())

    def restate(self, kind: str, key: str, detail: str) -> None:
        """An open exception's detail says how things stand now, not when it opened: a person
        holding 37 devices at opening and 89 now reads 89 (one statement that changes nothing
        while the count stays)."""
        if (kind, key) not in self._open:
            return
        self._conn.execute(
            update(exceptions)
            .where(
                exceptions.c.type == kind,
                exceptions.c.key == key,
                exceptions.c.closed.is_(None),
                exceptions.c.detail != detail,
            )
            .values(detail=detail)
        )

    def close(self, kind: str, key: str) -> None:
        if (kind, key) not in self._open:
            return
        self._conn.execute(
            update(exceptions)
            .where(and_(exceptions.c.type == kind, exceptions.c.key == key, exceptions.c.closed.is_(None)))
            .values(closed=self.now)
        )
        self._open.discard((kind, key))
        log.info("exception closed: %s %s", kind, key)


def _presence(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """The device columns a retained `state` or `status` message sets: presence only. Who holds
    the device comes from its events (holders.py), never from what its `state` claims."""
    if kind == "status":
        if body.get("status") not in ("online", "offline"):
            raise Refused("bad_status")
        return {"status": body["status"]}
    return {}


def _upsert_devices(conn: Connection, heard: list[tuple[Route, dict[str, Any]]], now: float) -> None:
    """Each device heard in the batch: last_heard, and whatever its state and status said.

    Grouped by the columns set, so a batch from many devices is a few statements, not one each.
    """
    if not heard:
        return
    names = [where.device_id for where, _ in heard]
    known = set(conn.execute(select(devices.c.device_id).where(devices.c.device_id.in_(names))).scalars())
    new = [
        {"device_id": where.device_id, "site": where.site, "last_heard": now, **values}
        for where, values in heard
        if where.device_id not in known
    ]
    for columns in {tuple(sorted(row)) for row in new}:
        _insert_ignoring(conn, devices, [row for row in new if tuple(sorted(row)) == columns])
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for where, values in heard:
        if where.device_id in known:
            groups.setdefault(tuple(sorted(values)), []).append({"key": where.device_id, **values})
    for columns, rows in groups.items():
        assignments: dict[str, Any] = {column: bindparam(column) for column in columns}
        conn.execute(
            update(devices).where(devices.c.device_id == bindparam("key")).values(last_heard=now, **assignments), rows
        )


def count(conn: Connection, name: str, by: int) -> None:
    if not conn.execute(update(counters).where(counters.c.name == name).values(value=counters.c.value + by)).rowcount:
        conn.execute(insert(counters).values(name=name, value=by))


def _insert_ignoring(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> int:
    """INSERT ... ON CONFLICT DO NOTHING in the dialect at hand; how many rows went in."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return int(conn.execute(dialect.insert(table).on_conflict_do_nothing(), rows).rowcount or 0)


def _stored(conn: Connection, ids: list[str]) -> dict[str, Fresh]:
    """Which of these event ids are stored, with their content to compare. On PostgreSQL as
    `= ANY(array)`: one parameter, so every batch sends the same statement, which psycopg parses
    once; `IN` with a batch's 2,000 ids is a new statement each time, 12 ms of the ledger's CPU against 3 ms."""
    if conn.dialect.name == "postgresql":
        among = events.c.id == any_(literal(ids, postgresql.ARRAY(String)))
    else:
        among = events.c.id.in_(ids)
    query = select(
        events.c.id, events.c.payload, events.c.type, events.c.site, events.c.device_id, events.c.at, events.c.seq
    )
    stored = {}
    for row in conn.execute(query.where(among)):
        where = Route(row.site, row.device_id, "events", row.type)
        stored[row.id] = Fresh(where, orjson.loads(row.payload), row.payload, row.at, row.seq, {})
    return stored


def _insert_events(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """New events only (the batch asked which ids are stored, in a writing transaction that
    runs alone). On PostgreSQL through psycopg's COPY: the hot statement of ingest, at about
    3 us of the ledger's CPU per row against 19 us for an executemany INSERT through
    SQLAlchemy, and a quarter of the server's time (bench/README.md)."""
    insert_rows(conn, events, rows)


def _row(item: Fresh, chain_ok: bool | None, now: float) -> dict[str, Any]:
    return {**item.columns, "chain_ok": chain_ok, "received": now, "clock_skew_s": None}


def _brought(where: Route, event: dict[str, Any], raw: str, at: float) -> dict[str, Any]:
    """The event's columns that come from the message itself."""
    data = event["data"]
    return {
        "id": event["id"],
        "source": event["source"],
        "seq": data["seq"],
        "type": where.event_type,
        "site": where.site,
        "device_id": where.device_id,
        "staff_id": _text(data.get("staff_id")),
        "session_id": _text(data.get("session_id")),
        "reason": _text(data.get("reason")),
        "for_id": _text(data.get("for")),
        "at": at,
        "payload": raw,
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
    if at is None or not RFC3339.fullmatch(body["time"]):
        raise Refused("bad_time")
    return at


def _json_object(payload: bytes) -> dict[str, Any]:
    """Parsed with orjson: a quarter of the standard parser's time on an event (1.6 us against
    6.2 us), and every message is parsed. It refuses what an appliance never sends and the
    standard parser lets through (NaN, lone surrogates, integers beyond 64 bits): not JSON."""
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise Refused("not_json") from None
    if not isinstance(body, dict):
        raise Refused("not_json")
    if b"\\u0000" in payload and _holds_nul(body):
        raise Refused("nul_character")
    return body


def _holds_nul(value: object) -> bool:
    """A NUL character: JSON may carry one, PostgreSQL's text cannot, and one such message would
    make every batch that holds it fail, again at each redelivery. Looked for only in the rare
    message whose text holds the escape."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(key) or _holds_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _time(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None
