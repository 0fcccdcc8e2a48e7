"""The publisher thread: drains the outbox to the broker in strict `seq` order, at least once.

A row is marked acknowledged only after its PUBACK. Each connection starts a fresh paho client
(`session.Session`) and resends from the oldest unacknowledged row, so order holds across
reconnects and nothing paho kept in memory is replayed out of order. Acknowledgements are
written in small batches: a crash before the batch lands only means a resend with the same
`id`, which consumers dedupe. A failed connection is retried with backoff; anything else that
goes wrong on this thread is a bug, and makes a fault everyone can see (`fault`).
"""

from __future__ import annotations

import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from handoff import compact_json
from handoff.audit.signature import signed
from handoff.config import MqttConfig
from handoff.mqtt import connection
from handoff.mqtt.backoff import backoff_delay
from handoff.mqtt.errors import LinkError
from handoff.mqtt.inbox import Inbox
from handoff.mqtt.outcomes import Outcomes
from handoff.mqtt.presence import Health, Presence
from handoff.mqtt.rewind import RewindGuard
from handoff.mqtt.routing import Handler, Router
from handoff.mqtt.session import STATUS_CHECK_S, Session
from handoff.mqtt.settings import Link, PublisherSettings
from handoff.mqtt.topics import Topics
from handoff.outbox import Blocked, Outbox, StoreError
from handoff.store import Store

log = logging.getLogger(__name__)

__all__ = ["Publisher", "PublisherSettings"]

DEFAULT_SETTINGS: Final = PublisherSettings()


class Publisher:
    """Owns the publisher thread, its reconnects, and what the outbox and the link look like to others."""

    def __init__(
        self,
        config: MqttConfig,
        topics: Topics,
        store: Outbox,
        *,
        source: str,
        version: str,
        disk: Callable[[], dict[str, Any]],
        on_command: Callable[[str, bytes], None] = lambda name, payload: None,
        subscriptions: Mapping[str, Handler] = MappingProxyType({}),
        health_provider: Health = list,
        loop_status: Callable[[], dict[str, Any]] = dict,
        settings: PublisherSettings = DEFAULT_SETTINGS,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
        key: Ed25519PrivateKey | None = None,
    ) -> None:
        tls = connection.tls_context(config) if config.tls else None
        self._link = Link(config, topics, source, version, tls, connection.password(config), key)
        self._store = store
        self._appliance = store if isinstance(store, Store) else None
        """The appliance's store brings its presence (retained state and status with the offline
        last will, the state read back on connect) and its signed checkpoints. The agent publishes
        from an outbox that has neither: it speaks for the same device and must leave the
        appliance's presence alone."""
        self._on_command = on_command
        self._subscriptions = subscriptions
        self._settings = settings
        self._clock = clock
        self._rand = rand
        self._inbox = Inbox()
        self._outcomes = Outcomes(store)
        self._presence = Presence(
            self._link, store, self._outcomes, health=health_provider, loop_status=loop_status, disk=disk
        )
        self._thread = threading.Thread(target=self._run, name="handoff-publisher", daemon=True)
        self._fault: str | None = None
        self._session: Session | None = None

    @property
    def connected(self) -> bool:
        """Whether the broker has the appliance now: offline-buffering feedback follows it."""
        session = self._session
        return self._fault is None and session is not None and session.connected

    @property
    def blocked(self) -> Blocked | None:
        """The broker's refusal every later event waits behind, if any: the ambient light shows a fault."""
        return self._outcomes.blocked

    @property
    def fault(self) -> str | None:
        """Why the publisher thread died, if it did. Nothing is delivered until the appliance
        restarts: the ambient light shows a fault and the systemd watchdog is no longer fed."""
        return self._fault

    @property
    def topics(self) -> Topics:
        return self._link.topics

    @property
    def source(self) -> str:
        return self._link.source

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Call after each commit: new events and a new retained state are waiting."""
        self._inbox.wake()

    def publish_result(self, payload: dict[str, Any]) -> None:
        self._inbox.put_result(compact_json.dumps(signed(self._link.key, payload)).encode())

    def stop(self, flush_timeout: float = 5.0) -> None:
        """Deliver what can be delivered within `flush_timeout`, say `offline`, disconnect."""
        self._inbox.stop(flush_timeout)
        self._thread.join()
        self._inbox.close()

    def _run(self) -> None:
        """Any exception not met on purpose below is a bug: it must not end delivery silently."""
        try:
            self._forget_fault()
            self._connect_and_serve()
        except Exception as exc:
            self._die(exc)

    def _connect_and_serve(self) -> None:
        attempt = 0
        while not self._inbox.stopping():
            self._session = session = Session(
                self._link,
                self._store,
                self._appliance,
                self._inbox,
                presence=self._presence,
                outcomes=self._outcomes,
                route=self._router,
                retention_days=self._settings.retention_days,
                clock=self._clock,
            )
            error = session.run()
            if self._inbox.stopping():
                break
            if error is None:
                attempt = 0
                continue
            self._presence.record(False, str(error))
            delay = backoff_delay(attempt, self._settings.backoff_base_s, self._settings.backoff_cap_s, self._rand)
            config = self._link.config
            log.warning("broker %s:%s: %s; retrying in %.1f s", config.host, config.port, error, delay)
            attempt += 1
            self._wait_offline(error, delay)
        self._presence.record(False, "stopped")

    def _router(self, guard: RewindGuard) -> Router:
        return Router(self._link.topics, guard, self._on_command, self._subscriptions)

    def _wait_offline(self, error: LinkError, delay: float) -> None:
        """Sleep out the backoff, still saving a change of reader health or outbox for `handoff status`."""
        end = self._clock() + delay
        while (left := end - self._clock()) > 0 and not self._inbox.stopping():
            self._inbox.wait_for_stop(min(left, STATUS_CHECK_S))
            if self._presence.changed():
                self._presence.record(False, str(error))

    def _die(self, exc: Exception) -> None:
        self._fault = f"publisher thread failed: {type(exc).__name__}: {exc}"
        log.critical("%s; nothing is published until the appliance restarts", self._fault, exc_info=exc)
        if self._session is not None:
            self._session.drop()
        try:
            self._store.record_fault(self._fault)
            self._store.record_link(False, self._fault, self._presence.health())
        except (StoreError, sqlite3.Error) as failed:
            log.error("cannot record the publisher's failure for status: %s", failed)

    def _forget_fault(self) -> None:
        """A fault recorded by the appliance's previous run is history once this one publishes."""
        if self._store.fault() is not None:
            self._store.record_fault(None)
