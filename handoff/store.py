"""The appliance's store: a state change and the events it makes land in one SQLite commit.

The runtime waits for `Store.commit` before any LED says "accepted", so an event the user was
told about is on disk. `seq` comes from `appliance_state.last_seq`, not from the outbox rows,
so purging acknowledged rows can never make a number come back. Plain sqlite3 with an explicit
BEGIN IMMEDIATE keeps the transaction exactly as wide as one commit. The events wait in the
outbox shared with the agent (`handoff.outbox`); the state, the chain head, the signed
checkpoints and the seq-rewind record are the appliance's alone.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from handoff import compact_json
from handoff.audit.chain import canonical, genesis, sealed
from handoff.audit.checkpoint import CheckpointPolicy, make_checkpoint
from handoff.audit.signature import event_signature
from handoff.cloudevents import EventContext, envelope, source
from handoff.commands.seen import SeenCommand, remember
from handoff.core.codec import state_from_dict, state_summary, state_to_dict
from handoff.core.events import Event
from handoff.core.state import State, initial_state
from handoff.outbox import Outbox, StoredEvent, StoreError, writing

log = logging.getLogger(__name__)


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


def _numbered(event: Event, seq: int, context: EventContext, created: float, previous: str) -> tuple[StoredEvent, str]:
    """The stored event and its link, which the next event of the commit links to."""
    payload, chain = sealed(envelope(event, seq, context), previous)
    return StoredEvent(seq, event.id, f"events/{event.type}", payload, created), chain


def _renumbered(event: StoredEvent, seq: int, previous: str) -> tuple[StoredEvent, str]:
    """A new `seq` and link; a signature made by an earlier version over the old ones goes."""
    body = json.loads(event.payload)
    body["data"]["seq"] = seq
    body["data"].pop("signature", None)
    payload, chain = sealed(body, previous)
    return event._replace(seq=seq, payload=payload), chain


SIGNED: Final = b'"signature":'
"""Only a key can hold this in a stored event: a quote inside a JSON string is always escaped,
and no event has a nested `signature`."""


def signed_event(key: Ed25519PrivateKey, payload: bytes) -> bytes:
    """The event as published: its `data.signature` over the whole linked event, so the signature
    covers the chain. Ed25519 is deterministic, so every resend carries the same bytes."""
    body = orjson.loads(payload)
    body["data"]["signature"] = event_signature(key, body)
    return canonical(body)


class Store(Outbox):
    def __init__(
        self,
        conn: sqlite3.Connection,
        clock: Callable[[], float] = time.time,
        checkpoints: CheckpointPolicy | None = None,
    ) -> None:
        super().__init__(conn, clock)
        self._checkpoints = checkpoints
        self._key = checkpoints.key if checkpoints is not None else None
        """With [audit] one key signs the checkpoints and every event; without it nothing is signed."""

    def outgoing(self, event: StoredEvent) -> bytes:
        """The event as published: signed here if `sign` has not signed its row yet."""
        if self._key is None or SIGNED in event.payload:
            return event.payload
        return signed_event(self._key, event.payload)

    def sign(self, stored: Sequence[StoredEvent]) -> None:
        """Sign what a commit just stored, once its cue has been given.

        Not in the commit: an Ed25519 signature per event is a quarter of a millisecond per
        handoff that the beep would wait for. Not only on the way out either: a drain after an
        outage would then sign thousands of events while the broker waits. A row this misses
        (a crash in between, a failed write) is signed by `outgoing` as it leaves, into the
        same bytes, since Ed25519 is deterministic. The key is on the same disk as the rows, so
        an unsigned row is no easier to alter than a signed one."""
        if self._key is None or not stored:
            return
        rows = [(signed_event(self._key, event.payload), event.seq, event.id) for event in stored]
        try:
            with writing(self._conn, "sign committed events") as conn:
                conn.executemany("UPDATE outbox SET payload = ? WHERE seq = ? AND id = ?", rows)
        except StoreError as exc:
            log.warning("%s; the publisher signs them as it sends them", exc)

    def load_state(self) -> State | None:
        row = self._conn.execute("SELECT body FROM appliance_state WHERE id = 1").fetchone()
        return state_from_dict(json.loads(row[0])) if row else None

    def commit(
        self, state: State, events: Sequence[Event], context: EventContext, command: SeenCommand | None = None
    ) -> list[StoredEvent]:
        """Save `state` and append `events` numbered after the last seq ever handed out.

        The state row's upsert allocates the numbers and returns the last one with the chain
        head, so each event is linked to the one before in the same transaction that numbers
        it: a crash cannot leave a hole in the chain. A checkpoint is signed here when one is due.
        `command` is the id of the command that caused them, remembered in the same transaction.
        """
        now = self._clock()
        body = compact_json.dumps(state_to_dict(state))
        with writing(self._conn, "commit events") as conn:
            if command is not None:
                remember(conn, command, now)
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
                numbered, chain = _numbered(event, seq, context, now, chain)
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
        with writing(self._conn, "sign a checkpoint") as conn:
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
        with writing(self._conn, "record a checkpoint's acknowledgement") as conn:
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
        with writing(self._conn, "renumber events above the broker's seq") as conn:
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
                renumbered, chain = _renumbered(StoredEvent._make(row), seq, str(chain))
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

    def purge(self, retention_days: float) -> int:
        """The outbox's purge, and the checkpoints with it, except the one just below the oldest
        event kept: it anchors an export's first link."""
        cutoff = self._purge_cutoff(retention_days)
        with writing(self._conn, "purge acknowledged events") as conn:
            purged = self._purge_acknowledged(conn, cutoff)
            conn.execute(
                "DELETE FROM checkpoints WHERE acked < ? AND seq < (SELECT min(seq) FROM outbox) - 1", (cutoff,)
            )
        return purged
