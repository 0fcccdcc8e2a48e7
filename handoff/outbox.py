"""The durable queue both programs publish from: a message is committed here before anyone is
told it was sent, and deleted (after its retention) only once the broker acknowledged it.

The appliance's events (`handoff.store`) and the agent's receipts and activity reports
(`handoff.agent.journal`) wait in the same kind of table, and the publisher drains either the
same way: in `seq` order, marked acknowledged on the PUBACK, with a watermark below which
everything is acknowledged so the unsent rows are found by primary key. How rows are numbered
is each program's own: the appliance numbers its events from its state row (the number is
part of the event); the agent's queue numbers its messages itself (`append`).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Final, NamedTuple

from handoff import compact_json, db
from handoff.errors import HandoffError

SECONDS_PER_DAY: Final = 86400.0

SELF_NUMBERED_SCHEMA: Final = """
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL,
        topic TEXT NOT NULL,
        payload BLOB NOT NULL,
        created REAL NOT NULL,
        acked REAL
    );
    CREATE TABLE delivery (id INTEGER PRIMARY KEY CHECK (id = 1), acked_upto INTEGER NOT NULL);
    INSERT INTO delivery (id, acked_upto) VALUES (1, 0);
    CREATE VIEW unsent AS SELECT * FROM outbox
        WHERE seq > (SELECT acked_upto FROM delivery WHERE id = 1) AND acked IS NULL;
    CREATE TABLE broker_link (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        connected INTEGER NOT NULL,
        since REAL NOT NULL,
        last_error TEXT,
        readers TEXT NOT NULL DEFAULT '[]'
    );
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
"""A queue that numbers its own messages: AUTOINCREMENT never hands out a number again, even
once every row below it is purged, so a new message can never fall under the watermark. The
appliance's database holds the same tables, made by its own migrations (`handoff.db`)."""


class StoreError(HandoffError):
    """The database refused a write (disk full, read-only, I/O error); nothing committed is lost."""


class StoredEvent(NamedTuple):
    """A message as it sits in the outbox: `topic` is the suffix under `P/S/D/`.

    A tuple in the outbox's column order, so rows go to and come from SQLite as they are.
    """

    seq: int
    id: str
    topic: str
    payload: bytes
    created: float


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
class Refused:
    """How often the broker refused publishes on one topic, and the last reason: counted for
    `handoff status`, since a refused checkpoint or state leaves no other trace on the cart."""

    count: int
    reason: str
    at: float

    def describe(self, topic: str) -> str:
        return f"{topic}: {self.count} refused, last {self.reason}"


@dataclass(frozen=True)
class LinkRecord:
    """Broker connectivity as the publisher last saw it, for `handoff status` in another process."""

    connected: bool
    since: float
    last_error: str | None
    readers: list[dict[str, Any]]


def append(conn: sqlite3.Connection, topic: str, message_id: str, payload: bytes, created: float) -> None:
    """Queue one message in a self-numbered outbox (`SELF_NUMBERED_SCHEMA`), inside the caller's
    transaction, so that it commits with what the caller records beside it."""
    conn.execute(
        "INSERT INTO outbox (id, topic, payload, created) VALUES (?, ?, ?, ?)", (message_id, topic, payload, created)
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
def writing(conn: sqlite3.Connection, what: str) -> Iterator[sqlite3.Connection]:
    """A write transaction whose failure is a `StoreError` saying what could not be done."""
    try:
        with db.transaction(conn):
            yield conn
    except sqlite3.Error as exc:
        raise StoreError(f"cannot {what} in the database: {exc}") from None


class Outbox:
    """What the publisher reads and records: the unsent messages, their acknowledgements, the
    broker link and the refusal the queue waits behind."""

    def __init__(self, conn: sqlite3.Connection, clock: Callable[[], float] = time.time) -> None:
        self._conn = conn
        self._clock = clock

    def unsent(self, after_seq: int = 0, limit: int = 1000) -> list[StoredEvent]:
        rows = self._conn.execute(
            "SELECT seq, id, topic, payload, created FROM unsent WHERE seq > ? ORDER BY seq LIMIT ?",
            (after_seq, limit),
        ).fetchall()
        return [StoredEvent._make(row) for row in rows]

    def outgoing(self, event: StoredEvent) -> bytes:
        """The bytes to publish for a row: as stored here; the appliance's store signs its events."""
        return event.payload

    def all_events(self) -> Iterator[tuple[StoredEvent, float | None]]:
        """Every message still held, sent or not, oldest first, with its acknowledgement time."""
        rows = self._conn.execute("SELECT seq, id, topic, payload, created, acked FROM outbox ORDER BY seq")
        for seq, id_, topic, payload, created, acked in rows:
            yield StoredEvent(seq, id_, topic, payload, created), acked

    def mark_acked(self, seqs: Sequence[int]) -> None:
        """Stamp the acknowledged rows, one UPDATE per run of consecutive seqs, and move the
        watermark up to the first row still waiting."""
        if not seqs:
            return
        now = self._clock()
        with writing(self._conn, "record acknowledgements") as conn:
            conn.executemany(
                "UPDATE outbox SET acked = ? WHERE seq BETWEEN ? AND ? AND acked IS NULL",
                [(now, first, last) for first, last in _runs(seqs)],
            )
            conn.execute(
                "UPDATE delivery SET acked_upto = coalesce("
                " (SELECT seq - 1 FROM outbox WHERE seq > delivery.acked_upto AND acked IS NULL ORDER BY seq LIMIT 1),"
                " (SELECT max(seq) FROM outbox), acked_upto) WHERE id = 1"
            )

    def has_unsent(self) -> bool:
        """Cheaper than `depth()` during a backlog: one primary-key probe above the watermark."""
        return self._conn.execute("SELECT 1 FROM unsent LIMIT 1").fetchone() is not None

    def depth(self) -> int:
        """How many messages wait, without reading them: a backlog of 50,000 rows is 35 MB of
        pages to count. The rows above the watermark are numbered without gaps (numbers are
        handed out in order, and only rows under the watermark are ever deleted), so they are
        the highest seq less the watermark, less the few acknowledged out of order among them."""
        row = self._conn.execute(
            "SELECT coalesce((SELECT max(seq) FROM outbox), 0) - acked_upto"
            " - (SELECT count(*) FROM outbox INDEXED BY outbox_acked"
            " WHERE seq > delivery.acked_upto AND acked IS NOT NULL) FROM delivery WHERE id = 1"
        ).fetchone()
        return max(0, int(row[0]))

    def oldest_unsent_created(self) -> float | None:
        """When the first message still waiting was made: a primary-key probe, where the oldest
        `created` of all would read every unsent row (the queue is in the order it was made)."""
        row = self._conn.execute("SELECT created FROM unsent ORDER BY seq LIMIT 1").fetchone()
        return None if row is None else float(row[0])

    def purge(self, retention_days: float) -> int:
        """Drop acknowledged messages older than the retention; unsent ones are never touched."""
        with writing(self._conn, "purge acknowledged events") as conn:
            return self._purge_acknowledged(conn, self._purge_cutoff(retention_days))

    def _purge_cutoff(self, retention_days: float) -> float:
        return self._clock() - retention_days * SECONDS_PER_DAY

    def _purge_acknowledged(self, conn: sqlite3.Connection, cutoff: float) -> int:
        cursor = conn.execute(
            "DELETE FROM outbox WHERE seq <= (SELECT acked_upto FROM delivery WHERE id = 1) AND acked < ?",
            (cutoff,),
        )
        return cursor.rowcount

    def record_link(self, connected: bool, last_error: str | None, readers: list[dict[str, Any]]) -> None:
        """Keep `since` when the connectivity did not change, so status shows how long it has held."""
        now = self._clock()
        with writing(self._conn, "record broker connectivity") as conn:
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
        with writing(self._conn, "record the blocked outbox") as conn:
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

    def record_refused(self, topic: str, reason: str) -> None:
        """Count one refusal of a publish on `topic` (its suffix under `P/S/D/`, e.g. `checkpoint`)."""
        now = self._clock()
        with writing(self._conn, "count a refused publish") as conn:
            held = self._refused(conn)
            count = held[topic].count + 1 if topic in held else 1
            held[topic] = Refused(count, reason, now)
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('refused_topics', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (compact_json.dumps({name: asdict(refused) for name, refused in held.items()}),),
            )

    def refused(self) -> dict[str, Refused]:
        return self._refused(self._conn)

    @staticmethod
    def _refused(conn: sqlite3.Connection) -> dict[str, Refused]:
        row = conn.execute("SELECT value FROM meta WHERE key = 'refused_topics'").fetchone()
        return {topic: Refused(**fields) for topic, fields in json.loads(row[0]).items()} if row else {}

    def record_fault(self, fault: str | None) -> None:
        """Why the publisher thread died, for `handoff status` in another process; None clears it."""
        with writing(self._conn, "record the publisher's failure") as conn:
            if fault is None:
                conn.execute("DELETE FROM meta WHERE key = 'publisher_fault'")
            else:
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('publisher_fault', ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (fault,),
                )

    def fault(self) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'publisher_fault'").fetchone()
        return str(row[0]) if row else None
