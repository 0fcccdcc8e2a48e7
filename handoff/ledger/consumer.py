"""`handoff ledger run`: one persistent MQTT 5 session in, batched database commits, acks after.

paho's manual acknowledgements hold each message's PUBACK until the batch holding it has
committed: killed at any line, the ledger has either stored a message or the broker still has
it for the next session. Batching (up to BATCH_MAX messages, or BATCH_WAIT_S after the first)
is what makes ingest fast: one commit, one fsync, for many messages. The next batch's
signatures are verified while one is written (`Recorder.verify_ahead`); a batch taken but not
yet written is simply not acknowledged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Final

from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy import Engine

from handoff.audit.keys import load_public_keys
from handoff.ledger.config import LedgerConfig
from handoff.ledger.database import writing
from handoff.ledger.ingest import Message, Recorder, evaluate
from handoff.ledger.trust import Ahead
from handoff.mqtt import connection

log = logging.getLogger("handoff.ledger")

BATCH_MAX: Final = 2000
BATCH_WAIT_S: Final = 0.05
EVALUATE_EVERY_S: Final = 1.0
SESSION_EXPIRY_S: Final = 7 * 86400
RECEIVE_MAXIMUM: Final = 4000
"""Unacknowledged messages the broker may send at once, and the most the ledger holds: a batch
must be able to fill while the one before it commits."""


def subscriptions(config: LedgerConfig) -> list[str]:
    prefix = config.mqtt.topic_prefix.rstrip("/")
    share = f"$share/{config.mqtt.shared_group}/" if config.mqtt.shared_group else ""
    kinds = ("events/#", "state", "status", "receipts", "checkpoint")
    return [f"{share}{prefix}/+/+/{kind}" for kind in kinds]


class Consumer:
    def __init__(self, config: LedgerConfig, engine: Engine, clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._engine = engine
        self._clock = clock
        keys = config.ledger.audit_keys
        self._recorder = Recorder(
            config.mqtt.topic_prefix,
            load_public_keys(keys, "ledger.audit_keys") if keys else [],
            allow_untrusted=config.ledger.allow_untrusted,
        )
        self._pending: list[tuple[Message, int, int]] = []
        self._held = 0
        """Messages taken from paho and not yet acknowledged: pending, and in the batch committing."""
        self._most_held = 0
        lock = threading.Lock()
        self._arrived = threading.Condition(lock)
        self._room = threading.Condition(lock)
        self._stopping = threading.Event()
        self._committed = 0
        self._client = self._new_client()

    def _new_client(self) -> Client:
        mqtt = self._config.mqtt
        client = Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=mqtt.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=True,
        )
        if mqtt.tls:
            client.tls_set_context(connection.tls_context(mqtt))
        if mqtt.username:
            client.username_pw_set(mqtt.username, connection.password(mqtt))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def stop(self) -> None:
        """Signal-safe: only sets a flag the loop polls."""
        self._stopping.set()

    def run(self) -> None:
        mqtt = self._config.mqtt
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = SESSION_EXPIRY_S
        properties.ReceiveMaximum = RECEIVE_MAXIMUM
        self._client.connect_async(mqtt.host, mqtt.port, keepalive=30, clean_start=False, properties=properties)
        self._client.loop_start()
        next_evaluation = 0.0
        batch: list[tuple[Message, int, int]] = []
        verdicts: Future[Ahead] | None = None
        try:
            while not self._stopping.is_set():
                upcoming = self._take_batch(wait=not batch)
                coming = self._recorder.verify_ahead(self._engine, [message for message, _, _ in upcoming])
                if batch:
                    self._commit(batch, verdicts)
                batch, verdicts = upcoming, coming
                if self._clock() >= next_evaluation:
                    next_evaluation = self._clock() + EVALUATE_EVERY_S
                    self._evaluate()
        finally:
            with self._room:
                self._stopping.set()
                self._room.notify()
            self._client.disconnect()
            self._client.loop_stop()
            log.info(
                "stopped; %d messages taken from the broker and committed in this run, at most %d held at once",
                self._committed,
                self._most_held,
            )

    def _take_batch(self, *, wait: bool) -> list[tuple[Message, int, int]]:
        """The next batch; without `wait`, what is pending now (a batch is waiting to be written)."""
        with self._arrived:
            if not self._pending and wait:
                self._arrived.wait(EVALUATE_EVERY_S / 2)
            if self._pending and len(self._pending) < BATCH_MAX and wait:
                self._arrived.wait(BATCH_WAIT_S)
            batch, self._pending = self._pending[:BATCH_MAX], self._pending[BATCH_MAX:]
        return batch

    def _commit(self, batch: list[tuple[Message, int, int]], verdicts: Future[Ahead] | None) -> None:
        with writing(self._engine) as conn:
            self._recorder.apply(conn, [message for message, _, _ in batch], self._clock(), verdicts)
        for _, mid, qos in batch:
            self._client.ack(mid, qos)
        self._committed += len(batch)
        with self._room:
            self._held -= len(batch)
            self._room.notify()

    def _evaluate(self) -> None:
        settings = self._config.ledger
        with writing(self._engine) as conn:
            evaluate(conn, self._clock(), settings.overdue_after_s, settings.offline_after_s, settings.holds_many)

    def _on_connect(
        self, client: Client, userdata: object, flags: ConnectFlags, reason: ReasonCode, properties: Properties | None
    ) -> None:
        if reason.is_failure:
            log.error("broker refused the ledger: %s", reason)
            return
        log.info(
            "connected to %s:%s (session %s)",
            self._config.mqtt.host,
            self._config.mqtt.port,
            "resumed" if flags.session_present else "new",
        )
        client.subscribe([(topic, 1) for topic in subscriptions(self._config)])

    def _on_disconnect(
        self,
        client: Client,
        userdata: object,
        flags: DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if not self._stopping.is_set():
            log.warning("connection lost: %s; paho reconnects", reason)

    def _on_message(self, client: Client, userdata: object, message: MQTTMessage) -> None:
        """On paho's network thread: waiting here, while the ledger holds RECEIVE_MAXIMUM
        messages, is what stops paho reading from the socket. A message dropped on stopping is
        not acknowledged, so the broker delivers it again to the next session."""
        with self._arrived:
            self._room.wait_for(lambda: self._held < RECEIVE_MAXIMUM or self._stopping.is_set())
            if self._stopping.is_set():
                return
            self._pending.append((Message(message.topic, bytes(message.payload)), message.mid, message.qos))
            self._held += 1
            self._most_held = max(self._most_held, self._held)
            if len(self._pending) in (1, BATCH_MAX):
                self._arrived.notify()
