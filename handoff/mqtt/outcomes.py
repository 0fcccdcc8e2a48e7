"""What the broker made of what was published: the event the outbox waits behind, refusals per topic."""

from __future__ import annotations

import logging
import time

from handoff.outbox import Blocked, Outbox, StoreError

log = logging.getLogger("handoff.mqtt.publisher")


class Outcomes:
    """Kept in the store as well, so `handoff status` and doctor in another process see them."""

    def __init__(self, store: Outbox) -> None:
        self._store = store
        self._blocked = store.blocked()

    @property
    def blocked(self) -> Blocked | None:
        """The broker's refusal every later event waits behind, if any: the ambient light shows a fault."""
        return self._blocked

    def refused(self, topic: str, reason: str, *, event_seq: int | None = None) -> bool:
        """Count a refused publish on `topic`; an event's refusal blocks the outbox at its seq.

        True when that changed what the retained status says.
        """
        try:
            self._store.record_refused(topic, reason)
        except StoreError as exc:
            log.error("%s", exc)
        if event_seq is None:
            return False
        if self._blocked is not None and (self._blocked.seq, self._blocked.reason) == (event_seq, reason):
            return False
        blocked = Blocked(event_seq, reason, time.time())
        log.error("%s; every later event waits behind it", blocked.describe())
        return self._keep(blocked)

    def acked(self, seqs: list[int]) -> bool:
        """True when the event the outbox waited behind got through, which changes the status."""
        if self._blocked is None or self._blocked.seq not in seqs:
            return False
        log.info("outbox unblocked: seq %d was accepted", self._blocked.seq)
        return self._keep(None)

    def _keep(self, blocked: Blocked | None) -> bool:
        self._blocked = blocked
        try:
            self._store.record_blocked(blocked)
        except StoreError as exc:
            log.error("%s", exc)
        return True
