"""The durable outbox: a state change and the events it makes land in one SQLite commit.

The runtime waits for `Store.commit` before any LED says "accepted", so an event the user was
told about is on disk. `seq` comes from `appliance_state.last_seq`, not from the outbox rows,
so purging acknowledged rows can never make a number come back. Plain sqlite3 with an explicit
BEGIN IMMEDIATE keeps the transaction exactly as wide as one commit.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Final, NamedTuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from handoff import compact_json, db
from handoff.audit.chain import canonical, genesis, sealed
from handoff.audit.checkpoint import CheckpointPolicy, make_checkpoint
from handoff.audit.signature import event_signature
from handoff.cloudevents import EventContext, envelope, source
from handoff.core.codec import state_from_dict, state_summary, state_to_dict
from handoff.core.events import Event
from handoff.core.state import State, initial_state
from handoff.errors import HandoffError

SECONDS_PER_DAY: Final = 86400.0


class StoreError(HandoffError):
    """The database refused a write (disk full, read-only, I/O error); nothing committed is lost."""


class StoredEvent(NamedTuple):
    """An event as it sits in the outbox: `topic` is the suffix under `P/S/D/`.

    A tuple in the outbox's column order, so rows go to and come from SQLite as they are.
    """

    seq: int
    id: str
    topic: str
    payload: bytes
    created: float


@dataclass(frozen=True)
class Rewind:
    """The broker had seen a higher `seq` than this database remembers: the database lost events
    (a deleted WAL, a restored copy, an emptied file). Kept in the database for status and doctor."""

    broker_seq: int
    local_seq: int
    renumbered: int
    at: float

    def describe(self) -> str:
        return (
            f"seq rewind: the broker had seen seq {self.broker_seq} but this database only knew "
            f"{self.local_seq}; {self.renumbered} unsent event(s) renumbered from {self.broker_seq + 1}"
        )


@dataclass(frozen=True)
class Blocked:
    """The broker refused the event at `seq` (a negative PUBACK: an ACL denial, a payload it will not
    take). Order holds, so every later event waits behind it; kept for status, doctor and the light."""

    seq: int
    reason: str
    since: float

    def describe(self) -> str:
        return f"outbox blocked at seq {self.seq}: {self.reason}"


@dataclass(frozen=True)
class LinkRecord:
    """Broker connectivity as the publisher last saw it, for `handoff status` in another process."""

    connected: bool
    since: float
    last_error: str | None
    readers: list[dict[str, Any]]


def _numbered(
    event: Event, seq: int, context: EventContext, created: float, previous: str, key: Ed25519PrivateKey | None
) -> tuple[StoredEvent, str]:
    """The stored event and its link, which the next event of the commit links to."""
    payload, chain = _signed(envelope(event, seq, context), previous, key)
    return StoredEvent(seq, event.id, f"events/{event.type}", payload, created), chain


def _renumbered(event: StoredEvent, seq: int, previous: str, key: Ed25519PrivateKey | None) -> tuple[StoredEvent, str]:
    """A new `seq` and link change what the signature covers, so the old one goes and a new one is made."""
    body = json.loads(event.payload)
    body["data"]["seq"] = seq
    body["data"].pop("signature", None)
    payload, chain = _signed(body, previous, key)
    return event._replace(seq=seq, payload=payload), chain


def _signed(body: dict[str, Any], previous: str, key: Ed25519PrivateKey | None) -> tuple[bytes, str]:
    """The stored bytes: linked, then signed over the linked event, so the signature covers the chain."""
    payload, chain = sealed(body, previous)
    if key is None:
        return payload, chain
    body["data"]["signature"] = event_signature(key, body)
    return canonical(body), chain


def queue_message(conn: sqlite3.Connection, topic: str, message_id: str, payload: bytes, created: float) -> None:
    """Append one message that is not an appliance event (the agent's receipts and activity)
    to the outbox, inside the caller's transaction, so that it commits with what the caller
    records beside it.

    It is numbered as events are, so the publisher sends it in order and retires it on its
    PUBACK the same way; in such a database the state row holds only the numbering.
    """
    (seq,) = conn.execute(
        "INSERT INTO appliance_state (id, body, last_seq) VALUES (1, 'null', 1)"
        " ON CONFLICT (id) DO UPDATE SET last_seq = last_seq + 1 RETURNING last_seq"
    ).fetchone()
    conn.execute(
        "INSERT INTO outbox (seq, id, topic, payload, created) VALUES (?, ?, ?, ?, ?)",
        (seq, message_id, topic, payload, created),
    )


def _runs(seqs: Sequence[int]) -> Iterator[tuple[int, int]]:
    """(first, last) of each run of consecutive numbers: PUBACKs arrive in order, so usually one."""
    ordered = sorted(seqs)
    first = previous = ordered[0]
    for seq in ordered[1:]:
        if seq != previous + 1:
            yield first, previous
            first = seq
        previous = seq
    yield first, previous


@contextmanager
def _writing(conn: sqlite3.Connection, what: str) -> Iterator[sqlite3.Connection]:
    try:
        with db.transaction(conn):
            yield conn
    except sqlite3.Error as exc:
        raise StoreError(f"cannot {what} in the database: {exc}") from None


class Store:
    def __init__(
        self,
        conn: sqlite3.Connection,
        clock: Callable[[], float] = time.time,
        checkpoints: CheckpointPolicy | None = None,
    ) -> None:
        self._conn = conn
        self._clock = clock
        self._checkpoints = checkpoints
        self._key = checkpoints.key if checkpoints is not None else None
        """With [audit] one key signs the checkpoints and every event; without it nothing is signed."""

    def load_state(self) -> State | None:
        row = self._conn.execute("SELECT body FROM appliance_state WHERE id = 1").fetchone()
        return state_from_dict(json.loads(row[0])) if row else None

    def commit(self, state: State, events: Sequence[Event], context: EventContext) -> list[StoredEvent]:
        """Save `state` and append `events` numbered after the last seq ever handed out.

        The state row's upsert allocates the numbers and returns the last one with the chain
        head, so each event is linked to the one before in the same transaction that numbers
        it: a crash cannot leave a hole in the chain. A checkpoint is signed here when one is due.
        """
        now = self._clock()
        body = compact_json.dumps(state_to_dict(state))
        with _writing(self._conn, "commit events") as conn:
            last_seq, chain, checkpoint_seq, checkpoint_at = conn.execute(
                "INSERT INTO appliance_state (id, body, last_seq) VALUES (1, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET body = excluded.body, last_seq = last_seq + excluded.last_seq"
                " RETURNING last_seq, last_chain, checkpoint_seq, checkpoint_at",
                (body, len(events)),
            ).fetchone()
            if not events:
                return []
            chain = chain or genesis(source(context.site, context.reader_id))
            stored: list[StoredEvent] = []
            for seq, event in enumerate(events, start=last_seq - len(events) + 1):
                numbered, chain = _numbered(event, seq, context, now, chain, self._key)
                stored.append(numbered)
            conn.executemany("INSERT INTO outbox (seq, id, topic, payload, created) VALUES (?, ?, ?, ?, ?)", stored)
            conn.execute(
                "UPDATE appliance_state SET last_chain = ?,"
                " checkpoint_at = CASE WHEN checkpoint_at = 0 THEN ? ELSE checkpoint_at END WHERE id = 1",
                (chain, now),
            )
            since_signed = now - checkpoint_at if checkpoint_at else 0.0
            if self._checkpoints and self._checkpoints.due(last_seq - checkpoint_seq, since_signed):
                self._sign(conn, last_seq, chain, now, context)
        return stored

    def checkpoint(self, context: EventContext, *, force: bool = False) -> bool:
        """Sign the chain head when a checkpoint is due, or at once with `force` (a clean stop),
        provided events wait for one. Read first: most calls find nothing to do and write nothing."""
        if self._checkpoints is None:
            return False
        now = self._clock()
        head = self._conn.execute(
            "SELECT last_seq, last_chain, checkpoint_seq, checkpoint_at FROM appliance_state WHERE id = 1"
        ).fetchone()
        if head is None or head[1] is None:
            return False
        last_seq, chain, checkpoint_seq, checkpoint_at = head
        unsigned = last_seq - checkpoint_seq
        if unsigned <= 0 or not (force or self._checkpoints.due(unsigned, now - checkpoint_at)):
            return False
        with _writing(self._conn, "sign a checkpoint") as conn:
            self._sign(conn, last_seq, chain, now, context)
        return True

    def _sign(self, conn: sqlite3.Connection, seq: int, chain: str, now: float, context: EventContext) -> None:
        assert self._checkpoints is not None
        origin = source(context.site, context.reader_id)
        body = make_checkpoint(self._checkpoints.key, origin, context.device_id, seq, chain, now)
        conn.execute(
            "INSERT OR REPLACE INTO checkpoints (seq, id, payload, created) VALUES (?, ?, ?, ?)",
            (seq, body["id"], compact_json.dumps(body).encode(), now),
        )
        conn.execute("UPDATE appliance_state SET checkpoint_seq = ?, checkpoint_at = ? WHERE id = 1", (seq, now))

    def unsent_checkpoints(self) -> list[tuple[int, bytes]]:
        """(seq, payload) of the checkpoints the broker has not acknowledged, oldest first."""
        rows = self._conn.execute("SELECT seq, payload FROM checkpoints WHERE acked IS NULL ORDER BY seq").fetchall()
        return [(int(seq), bytes(payload)) for seq, payload in rows]

    def mark_checkpoint_acked(self, seq: int) -> None:
        with _writing(self._conn, "record a checkpoint's acknowledgement") as conn:
            conn.execute("UPDATE checkpoints SET acked = ? WHERE seq = ?", (self._clock(), seq))

    def all_checkpoints(self) -> Iterator[tuple[int, bytes, float, float | None]]:
        """(seq, payload, created, acked) of every checkpoint still held, oldest first."""
        rows = self._conn.execute("SELECT seq, payload, created, acked FROM checkpoints ORDER BY seq")
        for seq, payload, created, acked in rows:
            yield int(seq), bytes(payload), float(created), acked

    def retained_state(self) -> dict[str, Any] | None:
        """The retained `state` message: the summary plus the `seq` and `event_id` of the last event made.

        The id lets the publisher tell, on its next connect, whether the broker saw this
        database's event under that `seq` or another's.
        """
        row = self._conn.execute(
            "SELECT body, last_seq, outbox.id, last_chain FROM appliance_state"
            " LEFT JOIN outbox ON outbox.seq = last_seq WHERE appliance_state.id = 1"
        ).fetchone()
        if row is None:
            return None
        summary = state_summary(state_from_dict(json.loads(row[0])))
        return {**summary, "seq": row[1], "event_id": row[2], "chain": row[3]}

    def unsent(self, after_seq: int = 0, limit: int = 1000) -> list[StoredEvent]:
        rows = self._conn.execute(
            "SELECT seq, id, topic, payload, created FROM unsent WHERE seq > ? ORDER BY seq LIMIT ?",
            (after_seq, limit),
        ).fetchall()
        return [StoredEvent._make(row) for row in rows]

    def all_events(self) -> Iterator[tuple[StoredEvent, float | None]]:
        """Every event still held, sent or not, oldest first, with its acknowledgement time."""
        rows = self._conn.execute("SELECT seq, id, topic, payload, created, acked FROM outbox ORDER BY seq")
        for seq, id_, topic, payload, created, acked in rows:
            yield StoredEvent(seq, id_, topic, payload, created), acked

    def mark_acked(self, seqs: Sequence[int]) -> None:
        """Stamp the acknowledged rows, one UPDATE per run of consecutive seqs, and move the
        watermark up to the first row still waiting."""
        if not seqs:
            return
        now = self._clock()
        with _writing(self._conn, "record acknowledgements") as conn:
            conn.executemany(
                "UPDATE outbox SET acked = ? WHERE seq BETWEEN ? AND ? AND acked IS NULL",
                [(now, first, last) for first, last in _runs(seqs)],
            )
            conn.execute(
                "UPDATE delivery SET acked_upto = coalesce("
                " (SELECT seq - 1 FROM outbox WHERE seq > delivery.acked_upto AND acked IS NULL ORDER BY seq LIMIT 1),"
                " (SELECT max(seq) FROM outbox), acked_upto) WHERE id = 1"
            )

    def rebase_above(self, broker_seq: int, broker_event_id: str | None, broker_chain: str | None) -> Rewind | None:
        """Number the unacknowledged events above `broker_seq` if this database lost what the broker saw.

        It lost events when the broker's `seq` is past the last one handed out here, or when this
        database holds that `seq` under another id (it lost events and has since made as many).
        A `seq` the broker has seen must never be published again under another id, so the
        unacknowledged events (made after the loss: the publisher checks before it publishes)
        move up, keeping their ids and order, and later commits continue above them. Their links
        are made again from the broker's chain head, so the chain runs on across the incident.
        """
        now = self._clock()
        with _writing(self._conn, "renumber events above the broker's seq") as conn:
            state = conn.execute("SELECT last_seq FROM appliance_state WHERE id = 1").fetchone()
            local_seq = state[0] if state else 0
            if broker_seq <= local_seq:
                here = conn.execute("SELECT id FROM outbox WHERE seq = ?", (broker_seq,)).fetchone()
                if broker_event_id is None or here is None or here[0] == broker_event_id:
                    return None
            (acked_upto,) = conn.execute("SELECT acked_upto FROM delivery WHERE id = 1").fetchone()
            rows = conn.execute(
                "SELECT seq, id, topic, payload, created FROM outbox WHERE seq > ? ORDER BY seq", (acked_upto,)
            ).fetchall()
            chain = broker_chain or genesis(json.loads(rows[0][3])["source"]) if rows else broker_chain
            moved: list[StoredEvent] = []
            for seq, row in enumerate(rows, start=broker_seq + 1):
                renumbered, chain = _renumbered(StoredEvent._make(row), seq, str(chain), self._key)
                moved.append(renumbered)
            conn.execute("DELETE FROM outbox WHERE seq > ?", (acked_upto,))
            conn.executemany("INSERT INTO outbox (seq, id, topic, payload, created) VALUES (?, ?, ?, ?, ?)", moved)
            conn.execute(
                "INSERT INTO appliance_state (id, body, last_seq, last_chain, checkpoint_seq) VALUES (1, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET last_seq = excluded.last_seq, last_chain = excluded.last_chain,"
                " checkpoint_seq = excluded.checkpoint_seq",
                (compact_json.dumps(state_to_dict(initial_state(now))), broker_seq + len(moved), chain, broker_seq),
            )
            conn.execute("UPDATE delivery SET acked_upto = ? WHERE id = 1", (broker_seq,))
            rewind = Rewind(broker_seq, local_seq, len(moved), now)
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('seq_rewind', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (compact_json.dumps(asdict(rewind)),),
            )
        return rewind

    def rewind(self) -> Rewind | None:
        """The last seq rewind this database recovered from, if any."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'seq_rewind'").fetchone()
        return Rewind(**json.loads(row[0])) if row else None

    def has_unsent(self) -> bool:
        """Cheaper than `depth()` during a backlog: one primary-key probe above the watermark."""
        return self._conn.execute("SELECT 1 FROM unsent LIMIT 1").fetchone() is not None

    def depth(self) -> int:
        row = self._conn.execute("SELECT count(*) FROM unsent").fetchone()
        return int(row[0])

    def oldest_unsent_created(self) -> float | None:
        row = self._conn.execute("SELECT min(created) FROM unsent").fetchone()
        return None if row[0] is None else float(row[0])

    def purge(self, retention_days: float) -> int:
        """Drop acknowledged events older than the retention; unsent ones are never touched.

        The checkpoint just below the oldest event kept stays: it anchors an export's first link.
        """
        cutoff = self._clock() - retention_days * SECONDS_PER_DAY
        with _writing(self._conn, "purge acknowledged events") as conn:
            cursor = conn.execute(
                "DELETE FROM outbox WHERE seq <= (SELECT acked_upto FROM delivery WHERE id = 1) AND acked < ?",
                (cutoff,),
            )
            conn.execute(
                "DELETE FROM checkpoints WHERE acked < ? AND seq < (SELECT min(seq) FROM outbox) - 1", (cutoff,)
            )
        return cursor.rowcount

    def record_link(self, connected: bool, last_error: str | None, readers: list[dict[str, Any]]) -> None:
        """Keep `since` when the connectivity did not change, so status shows how long it has held."""
        now = self._clock()
        with _writing(self._conn, "record broker connectivity") as conn:
            conn.execute(
                "INSERT INTO broker_link (id, connected, since, last_error, readers) VALUES (1, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET"
                " since = CASE WHEN connected = excluded.connected THEN since ELSE excluded.since END,"
                " connected = excluded.connected, last_error = excluded.last_error, readers = excluded.readers",
                (int(connected), now, last_error, compact_json.dumps(readers)),
            )

    def link(self) -> LinkRecord | None:
        row = self._conn.execute(
            "SELECT connected, since, last_error, readers FROM broker_link WHERE id = 1"
        ).fetchone()
        if row is None:
            return None
        return LinkRecord(bool(row[0]), float(row[1]), row[2], json.loads(row[3]))

    def record_blocked(self, blocked: Blocked | None) -> None:
        """Keep the refusal the outbox waits behind, or forget it once that event got through."""
        with _writing(self._conn, "record the blocked outbox") as conn:
            if blocked is None:
                conn.execute("DELETE FROM meta WHERE key = 'outbox_blocked'")
            else:
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('outbox_blocked', ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (compact_json.dumps(asdict(blocked)),),
                )

    def blocked(self) -> Blocked | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'outbox_blocked'").fetchone()
        return Blocked(**json.loads(row[0])) if row else None
