"""The publisher thread: drains the outbox to the broker in strict `seq` order, at least once.

A row is marked acknowledged only after its PUBACK. Each connection starts a fresh paho client
and resends from the oldest unacknowledged row, so order holds across reconnects and nothing
paho kept in memory is replayed out of order. Acknowledgements are written in small batches:
a crash before the batch lands only means a resend with the same `id`, which consumers dedupe.

The thread waits in select() on the broker socket and on its own wake-up socket, paho's
documented external-loop API, so a commit is sent the moment `wake()` is called, not at the
next poll.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import select
import socket
import sqlite3
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags, MQTTMessage, MQTTMessageInfo
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from handoff import compact_json
from handoff.audit.signature import public_key_b64, signed
from handoff.config import MqttConfig
from handoff.mqtt import connection
from handoff.mqtt.backoff import backoff_delay
from handoff.mqtt.topics import Topics
from handoff.store import Blocked, Store, StoredEvent, StoreError
from handoff.timefmt import rfc3339

log = logging.getLogger(__name__)

INFLIGHT: Final = 100
"""Most QoS 1 messages unacknowledged at once; fewer when the broker's CONNACK gives a lower
Receive Maximum (mosquitto's default is 20), since a strict broker disconnects a client that
sends more."""
PREFETCH: Final = 500
"""Outbox rows read at once, so the outbox is read in batches, not one row per PUBACK."""
ACK_FLUSH_S: Final = 0.05
IDLE_WAIT_S: Final = 1.0
"""Longest wait in select() with nothing due: paho's keepalive is checked at least this often."""
STATUS_EVERY_S: Final = 60.0
STATUS_CHECK_S: Final = 1.0
"""How often reader health and the outbox's emptiness are compared with what status last said:
a change is saved (for `handoff status`) and published within this, and never more often."""
UNSUPPORTED_PROTOCOL_VERSION: Final = 0x84
"""CONNACK's answer (MQTT 5 code; paho maps 3.1.1's return code 1 to it) from a broker that does
not speak the version `mqtt.protocol` names."""
PURGE_EVERY_S: Final = 3600.0


@dataclass(frozen=True)
class PublisherSettings:
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 60.0
    retention_days: float = 30.0
    presence: bool = True
    """Publish the device's retained state and status (with the offline last will) and read the
    state back on connect: the appliance's presence. The agent publishes receipts for the same
    device from its own outbox, and must leave the appliance's presence alone."""


@dataclass(frozen=True)
class Link:
    """What every connection is made with, fixed for the publisher's life."""

    config: MqttConfig
    topics: Topics
    source: str
    """Whose `seq` the retained state carries, so a replacement appliance is not taken for a rewind."""
    version: str
    tls: ssl.SSLContext | None
    secret: str | None
    key: Ed25519PrivateKey | None
    """The appliance's audit key: it signs status, state, the last will and command results."""


class Inbox:
    """What other threads hand the publisher thread: wake-ups, command results and the stop request.

    A wake-up is a byte on a socket pair the publisher's select() watches, so it ends the wait
    at once; a byte that does not fit means a wake-up is already pending.
    """

    def __init__(self) -> None:
        self._receiver, self._sender = socket.socketpair()
        self._receiver.setblocking(False)
        self._sender.setblocking(False)
        self._results: deque[bytes] = deque()
        self._stop = threading.Event()
        self.flush_timeout = 0.0

    def fileno(self) -> int:
        return self._receiver.fileno()

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            self._sender.send(b"\0")

    def take_wake(self) -> bool:
        """Whether a wake-up came since the last call; clears it."""
        woken = False
        try:
            while self._receiver.recv(4096):
                woken = True
        except BlockingIOError:
            pass
        return woken

    def put_result(self, payload: bytes) -> None:
        self._results.append(payload)
        self.wake()

    def take_result(self) -> bytes | None:
        return self._results.popleft() if self._results else None

    @property
    def has_results(self) -> bool:
        return bool(self._results)

    def stop(self, flush_timeout: float) -> None:
        self.flush_timeout = flush_timeout
        self._stop.set()
        self.wake()

    def stopping(self) -> bool:
        return self._stop.is_set()

    def wait_for_stop(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def close(self) -> None:
        self._receiver.close()
        self._sender.close()


class Publisher:
    """Owns the publisher thread, its reconnects, and what the outbox and the link look like to others."""

    def __init__(
        self,
        config: MqttConfig,
        topics: Topics,
        store: Store,
        *,
        source: str,
        version: str,
        disk: Callable[[], dict[str, Any]],
        on_command: Callable[[str, bytes], None] = lambda name, payload: None,
        subscriptions: Mapping[str, Callable[[bytes], None]] = MappingProxyType({}),
        health_provider: Callable[[], list[dict[str, Any]]] = list,
        loop_status: Callable[[], dict[str, Any]] = dict,
        settings: PublisherSettings = PublisherSettings(),
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
        key: Ed25519PrivateKey | None = None,
    ) -> None:
        tls = connection.tls_context(config) if config.tls else None
        self._link = Link(config, topics, source, version, tls, connection.password(config), key)
        self._store = store
        self._disk = disk
        self._on_command = on_command
        self._subscriptions = subscriptions
        self._health = health_provider
        self._loop_status = loop_status
        self._settings = settings
        self._clock = clock
        self._rand = rand
        self._inbox = Inbox()
        self._thread = threading.Thread(target=self._run, name="handoff-publisher", daemon=True)
        self._link_up = False
        self._blocked = store.blocked()
        self._status_said: str | None = None
        """What the last saved or published status said, as `_status_key` spells it."""

    @property
    def connected(self) -> bool:
        """Whether the broker has the appliance now: offline-buffering feedback follows it."""
        return self._link_up

    @property
    def blocked(self) -> Blocked | None:
        """The broker's refusal every later event waits behind, if any: the ambient light shows a fault."""
        return self._blocked

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
        attempt = 0
        while not self._inbox.stopping():
            session = _Session(
                self._link,
                self._store,
                self._inbox,
                status=self._status,
                on_link=self._record_link,
                status_changed=self._status_changed,
                on_outcome=self._record_outcome,
                on_command=self._on_command,
                subscriptions=self._subscriptions,
                settings=self._settings,
                clock=self._clock,
            )
            error = session.run()
            if self._inbox.stopping():
                break
            if error is None:
                attempt = 0
                continue
            self._record_link(False, error)
            delay = backoff_delay(attempt, self._settings.backoff_base_s, self._settings.backoff_cap_s, self._rand)
            config = self._link.config
            log.warning("broker %s:%s: %s; retrying in %.1f s", config.host, config.port, error, delay)
            attempt += 1
            self._wait_offline(error, delay)
        self._record_link(False, "stopped")

    def _wait_offline(self, error: str, delay: float) -> None:
        """Sleep out the backoff, still saving a change of reader health or outbox for `handoff status`."""
        end = self._clock() + delay
        while (left := end - self._clock()) > 0 and not self._inbox.stopping():
            self._inbox.wait_for_stop(min(left, STATUS_CHECK_S))
            if self._status_changed():
                self._record_link(False, error)

    def _status_key(self) -> str:
        return compact_json.dumps([self._health(), self._store.has_unsent(), self._loop_status()])

    def _status_changed(self) -> bool:
        """Whether status has news since it was last said; it counts as said from here on."""
        try:
            key = self._status_key()
        except sqlite3.Error as exc:
            log.error("cannot read the outbox for status: %s", exc)
            return False
        changed, self._status_said = key != self._status_said, key
        return changed

    def _record_link(self, connected: bool, error: str | None) -> None:
        self._link_up = connected
        try:
            self._store.record_link(connected, error, self._health())
        except StoreError as exc:
            log.error("%s", exc)

    def _record_outcome(self, refused: tuple[int, str] | None, acked: list[int]) -> bool:
        """Note a refused event, or that the event the outbox waited behind got through.

        True when that changed what the retained status says.
        """
        if refused is not None:
            seq, reason = refused
            if self._blocked is not None and (self._blocked.seq, self._blocked.reason) == refused:
                return False
            blocked: Blocked | None = Blocked(seq, reason, time.time())
        elif self._blocked is not None and self._blocked.seq in acked:
            log.info("outbox unblocked: seq %d was accepted", self._blocked.seq)
            blocked = None
        else:
            return False
        if blocked is not None:
            log.error("%s; every later event waits behind it", blocked.describe())
        self._blocked = blocked
        try:
            self._store.record_blocked(blocked)
        except StoreError as exc:
            log.error("%s", exc)
        return True

    def _status(self) -> bytes:
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
        if self._blocked is not None:
            body["outbox_blocked"] = {"seq": self._blocked.seq, "reason": self._blocked.reason}
        if self._link.key is not None:
            body["public_key"] = public_key_b64(self._link.key)
        return compact_json.dumps(signed(self._link.key, body)).encode()


class _Session:
    """One broker connection, from CONNECT until it drops or the publisher stops.

    The session keeps the in-flight window itself and paho's is off: on every PUBACK paho walks
    all the messages it holds to find the next queued one, and it ignores the broker's Receive
    Maximum. Events, retained state and status, and command results share the one window;
    the small ones go first, events follow in seq order.
    """

    def __init__(
        self,
        link: Link,
        store: Store,
        inbox: Inbox,
        *,
        status: Callable[[], bytes],
        on_link: Callable[[bool, str | None], None],
        status_changed: Callable[[], bool],
        on_outcome: Callable[[tuple[int, str] | None, list[int]], bool],
        on_command: Callable[[str, bytes], None],
        subscriptions: Mapping[str, Callable[[bytes], None]],
        settings: PublisherSettings,
        clock: Callable[[], float],
    ) -> None:
        self._link = link
        self._topics = link.topics
        self._store = store
        self._inbox = inbox
        self._status = status
        self._on_link = on_link
        self._status_changed = status_changed
        self._on_outcome = on_outcome
        self._on_command = on_command
        self._subscriptions = subscriptions
        """Further topics (full names) and who takes their messages: called on the publisher's
        thread before the message is acknowledged, so a handler that commits it loses nothing."""
        self._presence = settings.presence
        self._retention_days = settings.retention_days
        self._clock = clock
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
        self._props = connection.event_properties(link.config)
        self._client: Client = connection.new_client(
            link.config, link.topics, link.version, link.tls, link.secret, link.key, will=self._presence
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
        config = self._link.config
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
        deadline = self._clock() + self._client.connect_timeout
        while not self._connected and self._error is None and (left := deadline - self._clock()) > 0:
            if not self._wait(left) and not self._connected:
                return self._error or self._without_connack("connection lost before CONNACK")
        if not self._connected:
            self._client.disconnect()
            return self._error or self._without_connack("no CONNACK in time")
        self._on_link(True, None)
        log.info("connected to %s:%s, %d in flight at most", config.host, config.port, self._window)
        try:
            self._serve()
        except sqlite3.Error as exc:
            self._client.disconnect()
            return f"cannot read the outbox: {exc}"
        return self._error

    def _without_connack(self, what: str) -> str:
        """A broker that does not speak `mqtt.protocol` may refuse, hang up, or never answer."""
        protocol = self._link.config.protocol
        return (
            f'{what}; if the broker does not speak MQTT {protocol} (mqtt.protocol = "{protocol}"), '
            "`handoff doctor` says which to set"
        )

    def _serve(self) -> None:
        client = self._client
        if self._presence:
            _, self._state_mid = client.subscribe(self._topics.state, qos=1)
            _, self._history_mid = client.subscribe(self._topics.commands, qos=1)
            self._control.append((self._topics.status, self._status(), True))
        else:
            self._history_checked = True
        for topic in self._subscriptions:
            client.subscribe(topic, qos=1)
        self._status_changed()
        last_flush = last_status = last_purge = last_check = self._clock()
        purge_due = True
        while self._connected:
            if self._inbox.stopping() and self._finish():
                return
            if self._history_read and not self._history_checked:
                self._check_history()
            self._queue_state_when_caught_up()
            self._pump()
            now = self._clock()
            due = [last_check + STATUS_CHECK_S, last_status + STATUS_EVERY_S, last_purge + PURGE_EVERY_S]
            due.append(now + IDLE_WAIT_S)
            if self._acked or self._acked_checkpoints:
                due.append(last_flush + ACK_FLUSH_S)
            if self._inbox.stopping():
                due.append(now + ACK_FLUSH_S)
            if not self._wait(max(0.0, min(due) - now)):
                self._connected = False
            now = self._clock()
            if (self._acked or self._acked_checkpoints) and (now - last_flush >= ACK_FLUSH_S or not self._inflight):
                self._flush_acks()
                last_flush = now
            if now - last_check >= STATUS_CHECK_S:
                last_check = now
                if self._status_changed():
                    self._on_link(True, None)
                    self._say_status()
                    last_status = now
            if now - last_status >= STATUS_EVERY_S and self._presence:
                self._control.append((self._topics.status, self._status(), True))
                last_status = now
            if purge_due or now - last_purge >= PURGE_EVERY_S:
                self._purge()
                purge_due, last_purge = False, now
        self._flush_acks()

    def _say_status(self) -> None:
        if self._presence:
            self._control.append((self._topics.status, self._status(), True))

    def _wait(self, timeout: float) -> bool:
        """Wait for the broker, a wake-up or `timeout`, then let paho read, write and keep alive.

        False once the connection is gone.
        """
        client = self._client
        sock = client.socket()
        if sock is None:
            return False
        pending = sock.pending() if isinstance(sock, ssl.SSLSocket) else 0
        broker, inbox = sock.fileno(), self._inbox.fileno()
        writing = [broker] if client.want_write() else []
        readable, writable, _ = select.select([broker, inbox], writing, [], 0.0 if pending else timeout)
        if inbox in readable and self._inbox.take_wake():
            self._outbox_more = self._state_due = self._checkpoints_stale = True
        rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        if broker in readable or pending:
            rc = client.loop_read()
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS and (broker in writable or client.want_write()):
            rc = client.loop_write()
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            rc = client.loop_misc()
        return rc == MQTTErrorCode.MQTT_ERR_SUCCESS

    def _pump(self) -> None:
        """Fill the window: status, state and command results first, then events in seq order."""
        topics = self._topics
        while self._history_checked and self._connected and len(self._inflight) < self._window:
            if self._control:
                self._send(*self._control.popleft())
            elif (result := self._inbox.take_result()) is not None:
                self._send(topics.cmd_result, result)
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
        info = self._send(self._topics.checkpoint, payload, retain=True)
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
        if not self._state_due or self._waiting or self._outbox_more or not self._presence:
            return
        retained = self._store.retained_state()
        if self._store.unsent(self._sent_upto, 1):
            self._outbox_more = True
            return
        self._state_due = False
        if retained is not None:
            retained["source"] = self._link.source
        if retained is not None and retained != self._state_sent:
            payload = compact_json.dumps(signed(self._link.key, retained)).encode()
            self._control.append((self._topics.state, payload, True))
            self._state_sent = retained

    def _check_history(self) -> None:
        """Before anything is published: has the broker seen a higher `seq` from us than we remember?

        It has when the database lost events (a deleted WAL, an emptied or restored file). Then the
        unsent events move above the broker's number, so no `seq` is ever published twice.
        """
        self._history_checked = True
        self._client.unsubscribe(self._topics.state)
        seen = self._broker_state or {}
        broker_seq = seen.get("seq")
        if seen.get("source") != self._link.source or isinstance(broker_seq, bool) or not isinstance(broker_seq, int):
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
        if self._stop_deadline is None:
            self._stop_deadline = self._clock() + self._inbox.flush_timeout
        drained = not (
            self._inflight
            or self._waiting
            or self._outbox_more
            or self._control
            or self._inbox.has_results
            or self._checkpoints_stale
            or any(seq <= self._sent_upto for seq, _ in self._checkpoints)
        )
        if not drained and self._clock() < self._stop_deadline:
            return False
        self._flush_acks()
        if self._presence:
            info = self._send(
                self._topics.status, connection.offline_payload(self._link.version, self._link.key), retain=True
            )
            end = self._clock() + 2.0
            while not info.is_published() and self._connected and (left := end - self._clock()) > 0:
                self._wait(min(left, ACK_FLUSH_S))
        self._client.disconnect()
        self._wait(0.0)
        return True

    def _flush_acks(self) -> None:
        try:
            while self._acked_checkpoints:
                self._store.mark_checkpoint_acked(self._acked_checkpoints[-1])
                self._acked_checkpoints.pop()
            if self._acked:
                self._store.mark_acked(self._acked)
                if self._on_outcome(None, self._acked):
                    self._say_status()
                self._acked = []
        except StoreError as exc:
            log.error("%s", exc)

    def _purge(self) -> None:
        try:
            self._store.purge(self._retention_days)
        except StoreError as exc:
            log.error("%s", exc)

    def _on_connect(
        self, client: Client, userdata: Any, flags: ConnectFlags, reason: ReasonCode, properties: Properties | None
    ) -> None:
        if reason.is_failure:
            self._error = f"broker refused the connection: {reason}"
            if reason.value == UNSUPPORTED_PROTOCOL_VERSION:
                self._error = self._without_connack(self._error)
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
        if self._connected and not self._inbox.stopping():
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
        if not reason.is_failure:
            self._acked.append(seq)
        elif self._connected:  # the first refusal; later ones in the same read wait behind it anyway
            code = f"{reason} (0x{reason.value:02x})"
            self._on_outcome((seq, code), [])
            self._error = f"broker refused event seq {seq}: {code}"
            self._connected = False
            client.disconnect()

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
        if message.topic == self._topics.state:
            if not self._history_checked:
                self._broker_state = _json_object(bytes(message.payload))
            return
        handler = self._subscriptions.get(message.topic)
        if handler is not None:
            handler(bytes(message.payload))
            return
        name = self._topics.command_name(message.topic)
        if name is not None:
            self._on_command(name, bytes(message.payload))


def _json_object(payload: bytes) -> dict[str, Any] | None:
    try:
        body = json.loads(payload)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None
