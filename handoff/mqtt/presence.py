"""What the appliance says about itself: retained status and state, the last will, and the
record `handoff status` reads in another process, kept true within a check of any change."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from handoff import compact_json
from handoff.audit.signature import public_key_b64, signed
from handoff.mqtt import connection
from handoff.mqtt.outcomes import Outcomes
from handoff.mqtt.settings import Link
from handoff.outbox import Outbox, StoreError
from handoff.timefmt import rfc3339

log = logging.getLogger("handoff.mqtt.publisher")

Health = Callable[[], list[dict[str, Any]]]


class Presence:
    def __init__(
        self,
        link: Link,
        store: Outbox,
        outcomes: Outcomes,
        *,
        health: Health,
        loop_status: Callable[[], dict[str, Any]],
        disk: Callable[[], dict[str, Any]],
    ) -> None:
        self._link = link
        self._store = store
        self._outcomes = outcomes
        self._health = health
        self._loop_status = loop_status
        self._disk = disk
        self._said: str | None = None
        """What the last record said, as `_key` spells it."""

    def will(self) -> connection.Will:
        return connection.Will(self._link.topics.status, self.offline())

    def offline(self) -> bytes:
        return connection.offline_payload(self._link.version, self._link.key)

    def status(self) -> bytes:
        body: dict[str, Any] = {
            "status": "online",
            "version": self._link.version,
            "time": rfc3339(time.time()),
            "outbox_depth": self._store.depth(),
            "readers": self._health(),
            "database": "ok",
            "disk": self._disk(),
        }
        body.update(self._loop_status())
        blocked = self._outcomes.blocked
        if blocked is not None:
            body["outbox_blocked"] = {"seq": blocked.seq, "reason": blocked.reason}
        if self._link.key is not None:
            body["public_key"] = public_key_b64(self._link.key)
        return compact_json.dumps(signed(self._link.key, body)).encode()

    def state(self, retained: dict[str, Any]) -> bytes:
        """The retained state as the store keeps it, with whose seq it is, signed."""
        return compact_json.dumps(signed(self._link.key, {**retained, "source": self._link.source})).encode()

    def changed(self) -> bool:
        """Whether status has news since it was last recorded."""
        try:
            return self._key(self._health()) != self._said
        except sqlite3.Error as exc:
            log.error("cannot read the outbox for status: %s", exc)
            return False

    def record(self, connected: bool, error: str | None) -> None:
        """What is recorded is what counts as said: one reading of reader health serves both, so
        a reader that opens while this runs is seen as news by the next check, not lost."""
        health = self._health()
        try:
            self._said = self._key(health)
            self._store.record_link(connected, error, health)
        except sqlite3.Error as exc:
            log.error("cannot read the outbox for status: %s", exc)
        except StoreError as exc:
            log.error("%s", exc)

    def health(self) -> list[dict[str, Any]]:
        return self._health()

    def _key(self, health: list[dict[str, Any]]) -> str:
        return compact_json.dumps([health, self._store.has_unsent(), self._loop_status()])
