"""Saying each outage once: a line when something the ledger depends on becomes unreachable,
one when it is back, not one per retry. Apart from `outage` so that the ledger's MQTT process,
which only watches the broker, does not import the database drivers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

log = logging.getLogger("handoff.ledger")


class Outage:
    """One thing the ledger depends on: the database, or the broker."""

    def __init__(self, name: str, clock: Callable[[], float]) -> None:
        self._name, self._clock = name, clock
        self.since: float | None = None

    def down(self, reason: str) -> None:
        if self.since is not None:
            return
        self.since = self._clock()
        stamp = datetime.fromtimestamp(self.since, UTC).isoformat(timespec="seconds")
        log.warning("%s unreachable since %s (%s), retrying", self._name, stamp, reason)

    def up(self) -> None:
        if self.since is None:
            return
        log.warning("%s reachable again after %.0f s", self._name, self._clock() - self.since)
        self.since = None
