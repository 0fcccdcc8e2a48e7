"""The outbox drain: what goes out next within the in-flight window, and what its PUBACKs settle.

The window is kept here and paho's is off: on every PUBACK paho walks all the messages it holds
to find the next queued one, and it ignores the broker's Receive Maximum. Retained status and
state and command results share the one window with events; the small ones go first, events
follow in seq order, and a signed checkpoint follows the events it covers.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from typing import Any, Final

from handoff.mqtt.inbox import Inbox
from handoff.mqtt.presence import Presence
from handoff.outbox import Outbox, StoredEvent, StoreError
from handoff.store import Store

log = logging.getLogger("handoff.mqtt.publisher")

INFLIGHT: Final = 100
"""Most QoS 1 messages unacknowledged at once; fewer when the broker's CONNACK gives a lower
Receive Maximum (mosquitto's default is 20), since a strict broker disconnects a client that
sends more."""
PREFETCH: Final = 500
"""Outbox rows read at once, so the outbox is read in batches, not one row per PUBACK."""


@dataclass(frozen=True)
class Sent:
    """What a message in flight carries, so its PUBACK is matched to what it settles."""

    topic: str
    """Its suffix under `P/S/D/`, e.g. `checkpoint` or `events/checkout`: refusals are counted by it."""
    seq: int | None = None
    """The event's seq for an outbox row, the covered seq for a checkpoint."""
    event: bool = False


Outgoing = tuple[Sent, bytes, bool]
"""What to publish, its payload, and whether it is retained."""


class OutboxDrain:
    """One connection's drain: a new connection resends from the oldest unacknowledged row."""

    def __init__(self, store: Outbox, appliance: Store | None, inbox: Inbox) -> None:
        self._store = store
        self._appliance = appliance
        """Where the retained state and the signed checkpoints come from: the agent has neither."""
        self._inbox = inbox
        self.window = INFLIGHT
        self.one_event_at_a_time = False
        """Set while the broker refuses an event: retried alone, so that an ACL lifted while a
        window of events is on its way cannot let a later event through before the refused one."""
        self._inflight: dict[int, Sent] = {}
        self._waiting: deque[StoredEvent] = deque()
        """Read from the outbox, not yet handed to paho."""
        self._outbox_more = True
        self._sent_upto = 0
        self._control: deque[Outgoing] = deque()
        self._acked: list[int] = []
        self._checkpoints: deque[tuple[int, bytes]] = deque()
        self._checkpoints_stale = True
        self._checkpoints_sent_upto = 0
        self._acked_checkpoints: list[int] = []
        self._state_due = True
        self._state_sent: dict[str, Any] | None = None

    @property
    def full(self) -> bool:
        return len(self._inflight) >= self.window

    @property
    def in_flight(self) -> bool:
        return bool(self._inflight)

    @property
    def acks_pending(self) -> bool:
        return bool(self._acked or self._acked_checkpoints)

    @property
    def drained(self) -> bool:
        """Nothing left to send or to hear back about: a stop may leave now."""
        return not (
            self._inflight
            or self._waiting
            or self._outbox_more
            or self._control
            or self._inbox.has_results
            or self._checkpoints_stale
            or any(seq <= self._sent_upto for seq, _ in self._checkpoints)
        )

    def woken(self) -> None:
        """A commit (or a stop) happened: new events, a new state or a checkpoint may be waiting."""
        self._outbox_more = self._state_due = self._checkpoints_stale = True

    def say_status(self, payload: bytes) -> None:
        self._control.append((Sent("status"), payload, True))

    def next(self) -> Outgoing | None:
        """The next message to publish: status, state and command results, then events, then a checkpoint."""
        if self._control:
            return self._control.popleft()
        if (result := self._inbox.take_result()) is not None:
            return Sent("cmd_result"), result, False
        events_wait = self.one_event_at_a_time and any(sent.event for sent in self._inflight.values())
        if not events_wait and (event := self._next_event()):
            self._sent_upto = event.seq
            return Sent(event.topic, event.seq, event=True), self._store.outgoing(event), False
        return self._next_checkpoint()

    def sending(self, mid: int, sent: Sent) -> None:
        self._inflight[mid] = sent

    def settle(self, mid: int, accepted: bool) -> Sent | None:
        """What a PUBACK answers; an accepted event or checkpoint is noted for the next flush."""
        sent = self._inflight.pop(mid, None)
        if sent is None or not accepted or sent.seq is None:
            return sent
        if sent.event:
            self._acked.append(sent.seq)
        elif sent.topic == "checkpoint":
            self._acked_checkpoints.append(sent.seq)
        return sent

    def flush_acks(self) -> list[int]:
        """Mark what the broker accepted; the event seqs marked (a crash before this only means a resend)."""
        marked: list[int] = []
        try:
            while self._acked_checkpoints and self._appliance is not None:
                self._appliance.mark_checkpoint_acked(self._acked_checkpoints[-1])
                self._acked_checkpoints.pop()
            if self._acked:
                self._store.mark_acked(self._acked)
                marked, self._acked = self._acked, []
        except StoreError as exc:
            log.error("%s", exc)
        return marked

    def queue_state_when_caught_up(self, presence: Presence) -> None:
        """The retained state goes out after the events it covers, and only when it changed.

        Read before looking for unsent events: a commit landing in between is then caught by
        that look, and its events go first.
        """
        if not self._state_due or self._waiting or self._outbox_more or self._appliance is None:
            return
        retained = self._appliance.retained_state()
        if self._store.unsent(self._sent_upto, 1):
            self._outbox_more = True
            return
        self._state_due = False
        if retained is not None and retained != self._state_sent:
            self._control.append((Sent("state"), presence.state(retained), True))
            self._state_sent = retained

    def _next_event(self) -> StoredEvent | None:
        if not self._waiting and self._outbox_more:
            batch = self._store.unsent(self._sent_upto, PREFETCH)
            self._outbox_more = len(batch) == PREFETCH
            self._waiting.extend(batch)
        return self._waiting.popleft() if self._waiting else None

    def _next_checkpoint(self) -> Outgoing | None:
        """The next signed checkpoint, retained, once the events it covers have gone out.

        The outbox is read again only after a wake (a commit or a stop may have signed one).
        """
        if self._checkpoints_stale:
            self._checkpoints_stale = False
            held = self._appliance.unsent_checkpoints() if self._appliance is not None else []
            self._checkpoints = deque((seq, payload) for seq, payload in held if seq > self._checkpoints_sent_upto)
        if not self._checkpoints or self._checkpoints[0][0] > self._sent_upto:
            return None
        seq, payload = self._checkpoints.popleft()
        self._checkpoints_sent_upto = seq
        return Sent("checkpoint", seq), payload, True
