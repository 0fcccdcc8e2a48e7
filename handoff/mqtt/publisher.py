"""The publisher thread: drains the outbox to the broker in strict `seq` order, at least once.

A row is marked acknowledged only after its PUBACK. Each connection starts a fresh paho client
and resends from the oldest unacknowledged row, so order holds across reconnects and nothing
paho kept in memory is replayed out of order. Acknowledgements are written in small batches:
a crash before the batch lands only means a resend with the same `id`, which consumers dedupe.
"""

from __future__ import annotations

import json
import logging
import random
import sqlite3
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags, MQTTMessage, MQTTMessageInfo
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from handoff import compact_json, db
from handoff.config import MqttConfig
from handoff.disk import disk_state
from handoff.mqtt import connection
from handoff.mqtt.backoff import backoff_delay
from handoff.mqtt.topics import Topics
from handoff.store import Store, StoredEvent, StoreError
from handoff.timefmt import rfc3339

log = logging.getLogger(__name__)

INFLIGHT: Final = 100
"""Most QoS 1 messages unacknowledged at once; fewer when the broker's CONNACK gives a lower
Receive Maximum (mosquitto's default is 20), since a strict broker disconnects a client that
sends more."""
PREFETCH: Final = 500
"""Outbox rows read at once, so the outbox is read in batches, not one row per PUBACK."""
ACK_FLUSH_S: Final = 0.05
IDLE_LOOP_S: Final = 0.05
BUSY_LOOP_S: Final = 0.005
"""While events are in flight, wait in select() for the next PUBACK instead of spinning: on a small
board a spinning publisher takes the CPU the broker connection and the readers need."""
STATUS_EVERY_S: Final = 60.0
STATUS_CHECK_S: Final = 1.0
"""How often reader health and the outbox's emptiness are compared with what status last said:
a change is saved (for `handoff status`) and published within this, and never more often."""
PURGE_EVERY_S: Final = 3600.0


@dataclass(frozen=True)
class PublisherSettings:
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 60.0
    retention_days: float = 30.0


class Publisher:
    def __init__(
        self,
        config: MqttConfig,
        site: str,
        device_id: str,
        data_dir: Path,
        *,
        source: str,
        version: str,
        on_command: Callable[[str, bytes], None] = lambda name, payload: None,
        health_provider: Callable[[], list[dict[str, Any]]] = list,
        store_fault: Callable[[], str | None] = lambda: None,
        settings: PublisherSettings = PublisherSettings(),
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._config = config
        self._topics = Topics(config.topic_prefix, site, device_id)
        self._source = source
        self._data_dir = data_dir
        self._store = Store(db.connect(data_dir))
        self._version = version
        self._on_command = on_command
        self._health = health_provider
        self._store_fault = store_fault
        self._settings = settings
        self._clock = clock
        self._rand = rand
        self._tls = connection.tls_context(config) if config.tls else None
        self._secret = connection.password(config)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._results: deque[bytes] = deque()
        self._thread = threading.Thread(target=self._run, name="handoff-publisher", daemon=True)
        self._flush_timeout = 0.0
        self._link_up = False
        self._status_said: str | None = None
        """What the last saved or published status said, as `_status_key` spells it."""

    @property
    def connected(self) -> bool:
        """Whether the broker has the appliance now: offline-buffering feedback follows it."""
        return self._link_up

    @property
    def topics(self) -> Topics:
        return self._topics

    @property
    def source(self) -> str:
        """Whose `seq` the retained state carries, so a replacement appliance is not taken for a rewind."""
        return self._source

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Call after each commit: new events and a new retained state are waiting."""
        self._wake.set()

    def publish_result(self, payload: dict[str, Any]) -> None:
        self._results.append(compact_json.dumps(payload).encode())
        self._wake.set()

    def stop(self, flush_timeout: float = 5.0) -> None:
        """Deliver what can be delivered within `flush_timeout`, say `offline`, disconnect."""
        self._flush_timeout = flush_timeout
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        store = self._store
        attempt = 0
        while not self._stop.is_set():
            error = _Session(self, store).run()
            if self._stop.is_set():
                break
            if error is None:
                attempt = 0
                continue
            self._record_link(store, False, error)
            delay = backoff_delay(attempt, self._settings.backoff_base_s, self._settings.backoff_cap_s, self._rand)
            log.warning("broker %s:%s: %s; retrying in %.1f s", self._config.host, self._config.port, error, delay)
            attempt += 1
            self._wait_offline(store, error, delay)
        self._record_link(store, False, "stopped")

    def _wait_offline(self, store: Store, error: str, delay: float) -> None:
        """Sleep out the backoff, still saving a change of reader health or outbox for `handoff status`."""
        end = self._clock() + delay
        while (left := end - self._clock()) > 0 and not self._stop.is_set():
            self._stop.wait(min(left, STATUS_CHECK_S))
            if self._status_changed(store):
                self._record_link(store, False, error)

    def _status_key(self, store: Store) -> str:
        return compact_json.dumps([self._health(), store.has_unsent(), self._store_fault()])

    def _status_changed(self, store: Store) -> bool:
        """Whether status has news since it was last said; it counts as said from here on."""
        try:
            key = self._status_key(store)
        except sqlite3.Error as exc:
            log.error("cannot read the outbox for status: %s", exc)
            return False
        changed, self._status_said = key != self._status_said, key
        return changed

    def _record_link(self, store: Store, connected: bool, error: str | None) -> None:
        self._link_up = connected
        try:
            store.record_link(connected, error, self._health())
        except StoreError as exc:
            log.error("%s", exc)

    def _status(self, store: Store) -> bytes:
        return compact_json.dumps(
            {
                "status": "online",
                "version": self._version,
                "time": rfc3339(time.time()),
                "outbox_depth": store.depth(),
                "readers": self._health(),
                "database": self._store_fault() or "ok",
                "disk": disk_state(self._data_dir).as_dict(),
            }
        ).encode()


class _Session:
    """One broker connection, from CONNECT until it drops or the publisher stops.

    The session keeps the in-flight window itself and paho's is off: on every PUBACK paho walks
    all the messages it holds to find the next queued one, and it ignores the broker's Receive
    Maximum. Events, retained state and status, and command results share the one window;
    the small ones go first, events follow in seq order.
    """

    def __init__(self, publisher: Publisher, store: Store) -> None:
        self._p = publisher
        self._store = store
        self._connected = False
        self._error: str | None = None
        self._window = INFLIGHT
        self._inflight: dict[int, int | None] = {}
        """Message id to the event's seq; None for a message that is not an event."""
        self._waiting: deque[StoredEvent] = deque()
        """Read from the outbox, not yet handed to paho."""
        self._outbox_more = True
        self._sent_upto = 0
        self._control: deque[tuple[str, bytes, bool]] = deque()
        self._acked: list[int] = []
        self._checkpoint_mids: dict[int, int] = {}
        """Message id to the seq of the checkpoint it carries."""
        self._checkpoints: deque[tuple[int, bytes]] = deque()
        self._checkpoints_stale = True
        self._checkpoints_sent_upto = 0
        self._acked_checkpoints: list[int] = []
        self._state_due = True
        self._state_sent: dict[str, Any] | None = None
        self._stop_deadline: float | None = None
        self._state_mid: int | None = None
        self._history_mid: int | None = None
        self._history_read = False
        """Set once the retained state (if any) has arrived: the second SUBACK follows it."""
        self._history_checked = False
        self._broker_state: dict[str, Any] | None = None
        self._props = connection.event_properties(publisher._config)
        self._client: Client = connection.new_client(
            publisher._config, publisher._topics, publisher._version, publisher._tls, publisher._secret
        )
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._client.max_inflight_messages_set(0)
        self._client.max_queued_messages_set(0)

    def run(self) -> str | None:
        """None after a connection that worked and ended; otherwise why it failed."""
        p = self._p
        config = p._config
        try:
            self._client.connect(
                config.host,
                config.port,
                keepalive=connection.KEEPALIVE_S,
                clean_start=connection.clean_start(config),
                properties=connection.connect_properties(config),
            )
        except ssl.SSLError as exc:
            return f"TLS failed: {exc.reason or exc}"
        except OSError as exc:
            return f"cannot connect: {exc.strerror or exc}"
        deadline = p._clock() + self._client.connect_timeout
        while not self._connected and self._error is None and p._clock() < deadline:
            if self._client.loop(IDLE_LOOP_S) != MQTTErrorCode.MQTT_ERR_SUCCESS and not self._connected:
                return self._error or "connection lost before CONNACK"
        if not self._connected:
            self._client.disconnect()
            return self._error or "no CONNACK in time"
        p._record_link(self._store, True, None)
        log.info("connected to %s:%s, %d in flight at most", config.host, config.port, self._window)
        try:
            self._serve()
        except sqlite3.Error as exc:
            self._client.disconnect()
            return f"cannot read the outbox: {exc}"
        return self._error

    def _serve(self) -> None:
        p = self._p
        client = self._client
        _, self._state_mid = client.subscribe(p._topics.state, qos=1)
        _, self._history_mid = client.subscribe(p._topics.commands, qos=1)
        p._status_changed(self._store)
        self._control.append((p._topics.status, p._status(self._store), True))
        last_flush = last_status = last_purge = last_check = p._clock()
        purge_due = True
        while self._connected:
            if p._stop.is_set() and self._finish():
                return
            if p._wake.is_set():
                p._wake.clear()
                self._outbox_more = self._state_due = self._checkpoints_stale = True
            if self._history_read and not self._history_checked:
                self._check_history()
            self._queue_state_when_caught_up()
            self._pump()
            if client.loop(BUSY_LOOP_S if self._inflight else IDLE_LOOP_S) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._connected = False
            now = p._clock()
            if (self._acked or self._acked_checkpoints) and (now - last_flush >= ACK_FLUSH_S or not self._inflight):
                self._flush_acks()
                last_flush = now
            if now - last_check >= STATUS_CHECK_S:
                last_check = now
                if p._status_changed(self._store):
                    p._record_link(self._store, True, None)
                    self._control.append((p._topics.status, p._status(self._store), True))
                    last_status = now
            if now - last_status >= STATUS_EVERY_S:
                self._control.append((p._topics.status, p._status(self._store), True))
                last_status = now
            if purge_due or now - last_purge >= PURGE_EVERY_S:
                self._purge()
                purge_due, last_purge = False, now
        self._flush_acks()

    def _pump(self) -> None:
        """Fill the window: status, state and command results first, then events in seq order."""
        topics = self._p._topics
        while self._history_checked and self._connected and len(self._inflight) < self._window:
            if self._control:
                self._send(*self._control.popleft())
            elif self._p._results:
                self._send(topics.cmd_result, self._p._results.popleft())
            elif event := self._next_event():
                self._send(topics.under(event.topic), event.payload, seq=event.seq)
                self._sent_upto = event.seq
            elif not self._send_checkpoint():
                return

    def _send_checkpoint(self) -> bool:
        """The next signed checkpoint, retained, once the events it covers have gone out.

        The outbox is read again only after a wake (a commit or a stop may have signed one).
        """
        if self._checkpoints_stale:
            self._checkpoints_stale = False
            held = self._store.unsent_checkpoints()
            self._checkpoints = deque((seq, payload) for seq, payload in held if seq > self._checkpoints_sent_upto)
        if not self._checkpoints or self._checkpoints[0][0] > self._sent_upto:
            return False
        seq, payload = self._checkpoints.popleft()
        info = self._send(self._p._topics.checkpoint, payload, retain=True)
        self._checkpoint_mids[info.mid] = seq
        self._checkpoints_sent_upto = seq
        return True

    def _next_event(self) -> StoredEvent | None:
        if not self._waiting and self._outbox_more:
            batch = self._store.unsent(self._sent_upto, PREFETCH)
            self._outbox_more = len(batch) == PREFETCH
            self._waiting.extend(batch)
        return self._waiting.popleft() if self._waiting else None

    def _send(self, topic: str, payload: bytes, retain: bool = False, seq: int | None = None) -> MQTTMessageInfo:
        properties = self._props if seq is not None else None
        info = self._client.publish(topic, payload, qos=1, retain=retain, properties=properties)
        if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._inflight[info.mid] = seq
        else:
            self._connected = False
            self._error = f"publish refused by client: {info.rc.name}"
        return info

    def _queue_state_when_caught_up(self) -> None:
        """The retained state goes out after the events it covers, and only when it changed.

        Read before looking for unsent events: a commit landing in between is then caught by
        that look, and its events go first.
        """
        if not self._state_due or self._waiting or self._outbox_more:
            return
        retained = self._store.retained_state()
        if self._store.unsent(self._sent_upto, 1):
            self._outbox_more = True
            return
        self._state_due = False
        if retained is not None:
            retained["source"] = self._p.source
        if retained is not None and retained != self._state_sent:
            self._control.append((self._p._topics.state, compact_json.dumps(retained).encode(), True))
            self._state_sent = retained

    def _check_history(self) -> None:
        """Before anything is published: has the broker seen a higher `seq` from us than we remember?

        It has when the database lost events (a deleted WAL, an emptied or restored file). Then the
        unsent events move above the broker's number, so no `seq` is ever published twice.
        """
        self._history_checked = True
        self._client.unsubscribe(self._p._topics.state)
        seen = self._broker_state or {}
        broker_seq = seen.get("seq")
        if seen.get("source") != self._p.source or isinstance(broker_seq, bool) or not isinstance(broker_seq, int):
            return
        try:
            rewind = self._store.rebase_above(
                broker_seq, _text_or_none(seen.get("event_id")), _text_or_none(seen.get("chain"))
            )
        except StoreError as exc:
            self._error = str(exc)
            self._connected = False
            self._client.disconnect()
            return
        if rewind is not None:
            log.error("%s: events were lost from the database; consumers will see a jump in seq", rewind.describe())

    def _finish(self) -> bool:
        """On stop: keep draining until the outbox is empty or the flush time is up, then leave."""
        p = self._p
        if self._stop_deadline is None:
            self._stop_deadline = p._clock() + p._flush_timeout
        drained = not (
            self._inflight
            or self._waiting
            or self._outbox_more
            or self._control
            or p._results
            or self._checkpoints_stale
            or any(seq <= self._sent_upto for seq, _ in self._checkpoints)
        )
        if not drained and p._clock() < self._stop_deadline:
            return False
        self._flush_acks()
        info = self._send(p._topics.status, connection.offline_payload(p._version), retain=True)
        end = p._clock() + 2.0
        while not info.is_published() and self._connected and p._clock() < end:
            self._client.loop(IDLE_LOOP_S)
        self._client.disconnect()
        self._client.loop(IDLE_LOOP_S)
        return True

    def _flush_acks(self) -> None:
        try:
            while self._acked_checkpoints:
                self._store.mark_checkpoint_acked(self._acked_checkpoints[-1])
                self._acked_checkpoints.pop()
            if self._acked:
                self._store.mark_acked(self._acked)
                self._acked = []
        except StoreError as exc:
            log.error("%s", exc)

    def _purge(self) -> None:
        try:
            self._store.purge(self._p._settings.retention_days)
        except StoreError as exc:
            log.error("%s", exc)

    def _on_connect(
        self, client: Client, userdata: Any, flags: ConnectFlags, reason: ReasonCode, properties: Properties | None
    ) -> None:
        if reason.is_failure:
            self._error = f"broker refused the connection: {reason}"
            return
        self._connected = True
        self._window = min(INFLIGHT, getattr(properties, "ReceiveMaximum", INFLIGHT))

    def _on_disconnect(
        self,
        client: Client,
        userdata: Any,
        flags: DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if self._connected and not self._p._stop.is_set():
            self._error = f"connection lost: {reason}"
        self._connected = False

    def _on_publish(
        self, client: Client, userdata: Any, mid: int, reason: ReasonCode, properties: Properties | None
    ) -> None:
        if mid not in self._inflight:
            return
        seq = self._inflight.pop(mid)
        checkpoint = self._checkpoint_mids.pop(mid, None)
        if checkpoint is not None and not reason.is_failure:
            self._acked_checkpoints.append(checkpoint)
        if seq is None:
            if reason.is_failure:
                log.warning("broker refused a status, state or command result message: %s", reason)
            return
        if reason.is_failure:
            self._error = f"broker refused event seq {seq}: {reason}"
            self._connected = False
            client.disconnect()
            return
        self._acked.append(seq)

    def _on_subscribe(
        self, client: Client, userdata: Any, mid: int, reasons: list[ReasonCode], properties: Properties | None
    ) -> None:
        if mid == self._state_mid and any(reason.is_failure for reason in reasons):
            log.warning(
                "broker refused to let us read back our retained state (%s): a lost database would go unnoticed",
                reasons[0],
            )
        if mid == self._history_mid:
            self._history_read = True

    def _on_message(self, client: Client, userdata: Any, message: MQTTMessage) -> None:
        if message.topic == self._p._topics.state:
            if not self._history_checked:
                self._broker_state = _json_object(bytes(message.payload))
            return
        name = self._p._topics.command_name(message.topic)
        if name is not None:
            self._p._on_command(name, bytes(message.payload))


def _json_object(payload: bytes) -> dict[str, Any] | None:
    try:
        body = json.loads(payload)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None
