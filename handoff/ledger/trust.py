"""Which messages the ledger believes, and where it keeps the others.

Anyone who can publish on the broker can put anything on any topic, so the topic proves
nothing: a message is believed only when its signature verifies under the key an admin enrolled
for its device (docs/security.md). The others are kept apart, never read as truth, so that
enrolling a device later can bring in what its own key signed; they are bounded, per source
and in all, because whoever floods the broker chooses how much arrives.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import cache
from typing import Any, Final, NamedTuple, Protocol, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError
from sqlalchemy import Connection, delete, func, insert, select

from handoff.audit.signature import event_signed_bytes, signature_ok, signed_bytes
from handoff.ledger.schema import enrolments, untrusted

T = TypeVar("T")

KEPT_PER_SOURCE: Final = 2000
KEPT_IN_ALL: Final = 20_000
KEPT_MAX_BYTES: Final = 4096
"""An appliance's message is well under 2 KiB: with these, the kept messages never take more
than 80 MB, however many arrive."""
RETAINED: Final = frozenset({"state", "status", "checkpoint"})
"""Kinds of which only the latest per topic means anything: one row each is kept."""
INLINE_BELOW: Final = 64
"""Batches this small are verified on the calling thread: handing them out costs more."""
LONGEST: Final = 255
SIGNATURE_BYTES: Final = 64


@dataclass(frozen=True)
class Enrolled:
    """A device's enrolled keys, as the 32 raw public bytes libsodium verifies under."""

    appliance: bytes
    agents: tuple[bytes, ...]


class Judged(NamedTuple):
    """One parsed message before the trust check: its kind, its topic's device and site, its
    body, and for an event the bytes its signature covers when they are worked out already."""

    kind: str
    site: str
    device_id: str
    body: dict[str, Any]
    signed: bytes | None = None


@dataclass(frozen=True)
class Kept:
    """A message not believed, as it is kept apart."""

    source: str
    device_id: str
    kind: str
    topic: str
    payload: str
    public_key: str | None


class Book(Protocol):
    def open(self, kind: str, device_id: str, source: str, key: str, detail: str) -> int | None: ...


def raw_key(encoded: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(encoded, validate=True))


@dataclass(frozen=True)
class Enrolment:
    """Every enrolment as read at one moment: its rows (to tell whether it changed) and the keys."""

    rows: tuple[tuple[str, str, str], ...]
    keys: dict[str, Enrolled] = field(compare=False)


def enrolment(conn: Connection) -> Enrolment:
    """Read once per batch: a few hundred small rows."""
    query = select(enrolments.c.device_id, enrolments.c.public_key, enrolments.c.agent_keys)
    rows = tuple(sorted((device_id, key, agents) for device_id, key, agents in conn.execute(query)))
    keys = {
        device_id: Enrolled(_raw(key), tuple(_raw(agent) for agent in json.loads(agents)))
        for device_id, key, agents in rows
    }
    return Enrolment(rows, keys)


def _raw(encoded: str) -> bytes:
    return raw_key(encoded).public_bytes_raw()


def believed(item: Judged, enrolled: Enrolled | None) -> bool:
    """Signed by the key enrolled for the device its topic names, and about that device."""
    if enrolled is None:
        return False
    body, device = item.body, item.device_id
    if item.kind == "events":
        return body.get("subject") == device and _event_signed(body, item.signed, enrolled.appliance)
    data = body.get("data")
    if item.kind == "checkpoint":
        return isinstance(data, dict) and _signed(data, (enrolled.appliance,))
    if item.kind == "receipts":
        return (
            isinstance(data, dict)
            and data.get("device_id") == device
            and body.get("subject") == device
            and _signed(data, enrolled.agents)
        )
    return _signed(body, (enrolled.appliance,))


def _event_signed(event: dict[str, Any], signed: bytes | None, key: bytes) -> bool:
    """As `signature.event_signature_ok`, through libsodium; `signed`: the bytes the signature
    covers, when known."""
    if signed is None:
        try:
            signed = event_signed_bytes(event)
        except (ValueError, TypeError):
            return False
    return _verifies(event["data"].get("signature"), signed, (key,))


def _signed(data: dict[str, Any], keys: Sequence[bytes]) -> bool:
    """As `signature.signature_ok`, through libsodium."""
    try:
        body = signed_bytes(data)
    except (ValueError, TypeError):
        return False
    return _verifies(data.get("signature"), body, keys)


def _verifies(encoded: object, body: bytes, keys: Sequence[bytes]) -> bool:
    """The same Ed25519 check as `signature.signed_by`, through libsodium rather than
    `cryptography`: every message the ledger takes is verified, and libsodium takes 70 us of
    CPU here where OpenSSL takes 125 (bench/README.md). It is the stricter of the two (it also
    refuses small-order keys and points), so nothing it accepts would `cryptography` refuse.
    cffi releases the GIL while it runs, as `cryptography` does."""
    if not isinstance(encoded, str):
        return False
    try:
        raw = base64.b64decode(encoded, validate=True)
    except ValueError:
        return False
    if len(raw) != SIGNATURE_BYTES:
        return False
    for key in keys:
        try:
            crypto_sign_open(raw + body, key)
        except BadSignatureError:
            continue
        return True
    return False


def judge(items: Sequence[Judged], keys: dict[str, Enrolled]) -> list[bool]:
    """Whether each message is believed. Ed25519 verification (~120 us) is as much as the rest
    of ingest per event, and `cryptography` releases the GIL while it verifies, so a batch is
    split over one thread per core."""
    if len(items) < INLINE_BELOW:
        return [believed(item, keys.get(item.device_id)) for item in items]
    workers = os.cpu_count() or 1
    size = -(-len(items) // workers)
    chunks = [items[start : start + size] for start in range(0, len(items), size)]
    verdicts = _pool().map(lambda chunk: [believed(item, keys.get(item.device_id)) for item in chunk], chunks)
    return [verdict for chunk in verdicts for verdict in chunk]


def judge_batch(items: Sequence[Judged], keys: dict[str, Enrolled]) -> list[bool | None]:
    """Whether each message is believed, or None for a `state` or `status` that a later one
    on its topic in the same batch supersedes: an appliance sends one with each event, and only
    the latest says anything, so only it is verified. Should it not verify, the earlier ones
    are, so that a forger publishing after each real message cannot silence a device."""
    latest: dict[tuple[str, str], int] = {}
    for index, item in enumerate(items):
        if item.kind in ("state", "status"):
            latest[(item.device_id, item.kind)] = index
    first = [
        index
        for index, item in enumerate(items)
        if item.kind not in ("state", "status") or latest[(item.device_id, item.kind)] == index
    ]
    verdicts: list[bool | None] = [None] * len(items)
    for index, ok in zip(first, judge([items[index] for index in first], keys), strict=True):
        verdicts[index] = ok
    failed = {topic for topic, index in latest.items() if verdicts[index] is False}
    again = [
        index for index, item in enumerate(items) if verdicts[index] is None and (item.device_id, item.kind) in failed
    ]
    for index, ok in zip(again, judge([items[index] for index in again], keys), strict=True):
        verdicts[index] = ok
    return verdicts


def ahead(work: Callable[[], T]) -> Future[T]:
    """Run `work` on a thread of its own (it hands its verifying on to the pool, so it must
    not hold a pool thread while it waits for them)."""
    return _planner().submit(work)


@cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="verify")


@cache
def _planner() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="verify-ahead")


def kept(item: Judged, topic: str, payload: bytes) -> Kept:
    source = item.body.get("source") if item.kind == "events" else None
    if not isinstance(source, str):
        source = f"{item.site}/{item.device_id}"
    return Kept(
        source[:LONGEST],
        item.device_id[:LONGEST],
        item.kind,
        topic,
        payload.decode(),
        presented_key(item.body) if item.kind == "status" else None,
    )


def presented_key(status: dict[str, Any]) -> str | None:
    """The key a `status` presents, when the status is signed by it: what an admin compares with
    the fingerprint `handoff provision` printed on the cart before enrolling."""
    encoded = status.get("public_key")
    if not isinstance(encoded, str):
        return None
    try:
        key = raw_key(encoded)
    except (ValueError, binascii.Error):
        return None
    return encoded if signature_ok(status, [key]) else None


def keep(conn: Connection, book: Book, messages: list[Kept], enrolled: Collection[str], now: float) -> int:
    """Keep what the bounds allow, open `untrusted_source` once per source kept; how many were
    dropped."""
    if not messages:
        return 0
    retained = {message.topic for message in messages if message.kind in RETAINED}
    if retained:
        conn.execute(delete(untrusted).where(untrusted.c.topic.in_(retained)))
    latest = {message.topic: message for message in messages if message.kind in RETAINED}
    messages = [m for m in messages if m.kind not in RETAINED or latest[m.topic] is m]
    sources = sorted({message.source for message in messages})
    grouped = select(untrusted.c.source, func.count()).where(untrusted.c.source.in_(sources))
    per_source = {source: int(count) for source, count in conn.execute(grouped.group_by(untrusted.c.source))}
    in_all = int(conn.execute(select(func.count()).select_from(untrusted)).scalar_one())
    rows, dropped = [], 0
    for message in messages:
        held = per_source.get(message.source, 0)
        if len(message.payload) > KEPT_MAX_BYTES or held >= KEPT_PER_SOURCE or in_all >= KEPT_IN_ALL:
            dropped += 1
            continue
        per_source[message.source] = held + 1
        in_all += 1
        rows.append({**asdict(message), "received": now})
        book.open("untrusted_source", message.device_id, message.source, message.source, _why(message, enrolled))
    if rows:
        conn.execute(insert(untrusted), rows)
    return dropped


def _why(message: Kept, enrolled: Collection[str]) -> str:
    if message.device_id not in enrolled:
        return f"{message.device_id} is not enrolled: its messages are kept apart, not believed"
    return f"a {message.kind} message not signed by the key enrolled for {message.device_id}: kept apart, not believed"
