"""One broker connection, from CONNECT until it drops or the publisher stops.

The thread waits in select() on the broker socket and on the inbox's wake-up socket, paho's
documented external-loop API, so a commit is sent the moment it is woken, not at the next poll.
"""

from __future__ import annotations

import contextlib
import logging
import select
import sqlite3
import ssl
from collections.abc import Callable
from typing import Any, Final

from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags, MQTTMessage, MQTTMessageInfo
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from handoff.mqtt import connection
from handoff.mqtt.drain import INFLIGHT, OutboxDrain, Sent
from handoff.mqtt.errors import (
    CannotConnect,
    ConnectionLost,
    ConnectionRefused,
    EventRefused,
    LinkError,
    OutboxUnreadable,
    PublishNotQueued,
    RewindNotRecorded,
)
from handoff.mqtt.inbox import Inbox
from handoff.mqtt.outcomes import Outcomes
from handoff.mqtt.presence import Presence
from handoff.mqtt.rewind import RewindGuard
from handoff.mqtt.routing import Router
from handoff.mqtt.settings import Link
from handoff.outbox import Outbox, StoreError
from handoff.store import Store

log = logging.getLogger("handoff.mqtt.publisher")

ACK_FLUSH_S: Final = 0.05
IDLE_WAIT_S: Final = 1.0
"""Longest wait in select() with nothing due: paho's keepalive is checked at least this often."""
STATUS_EVERY_S: Final = 60.0
STATUS_CHECK_S: Final = 0.5
"""How often reader health and the outbox's emptiness are compared with what status last said:
a change is saved (for `handoff status`) and published within this, so status is true within a
second of any change, and never more often."""
PURGE_EVERY_S: Final = 3600.0
UNSUPPORTED_PROTOCOL_VERSION: Final = 0x84
"""CONNACK's answer (MQTT 5 code; paho maps 3.1.1's return code 1 to it) from a broker that does
not speak the version `mqtt.protocol` names."""
OFFLINE_WAIT_S: Final = 2.0


class Session:
    def __init__(
        self,
        link: Link,
        store: Outbox,
        appliance: Store | None,
        inbox: Inbox,
        *,
        presence: Presence,
        outcomes: Outcomes,
        route: Callable[[RewindGuard], Router],
        retention_days: float,
        clock: Callable[[], float],
    ) -> None:
        self._link = link
        self._topics = link.topics
        self._store = store
        self._inbox = inbox
        self._presence = presence
        self._announce = appliance is not None
        """Publish the retained status and state, with the last will: not the agent, which must
        leave the appliance's presence alone."""
        self._outcomes = outcomes
        self._guard = RewindGuard(appliance, link.source, link.key.public_key() if link.key is not None else None)
        self._router = route(self._guard)
        self._drain = OutboxDrain(store, appliance, inbox)
        self._retention_days = retention_days
        self._clock = clock
        self._connected = False
        self._error: LinkError | None = None
        self._stop_deadline: float | None = None
        self._props = connection.event_properties(link.config)
        will = presence.will() if self._announce else None
        self._client: Client = connection.new_client(link.config, link.tls, link.secret, will=will)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._client.max_inflight_messages_set(0)
        self._client.max_queued_messages_set(0)

    @property
    def connected(self) -> bool:
        """From CONNACK until the connection drops: offline-buffering feedback follows it."""
        return self._connected

    def run(self) -> LinkError | None:
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
            return CannotConnect(f"TLS failed: {exc.reason or exc}")
        except OSError as exc:
            return CannotConnect(f"cannot connect: {exc.strerror or exc}")
        deadline = self._clock() + self._client.connect_timeout
        while not self._connected and self._error is None and (left := deadline - self._clock()) > 0:
            if not self._wait(left) and not self._connected:
                return self._error or self._without_connack("connection lost before CONNACK")
        if not self._connected:
            self._client.disconnect()
            return self._error or self._without_connack("no CONNACK in time")
        self._presence.record(True, None)
        log.info("connected to %s:%s, %d in flight at most", config.host, config.port, self._drain.window)
        try:
            self._serve()
        except sqlite3.Error as exc:
            self._client.disconnect()
            return OutboxUnreadable(f"cannot read the outbox: {exc}")
        return self._error

    def drop(self) -> None:
        """Close the socket without DISCONNECT: the broker publishes the last will (offline) at once."""
        sock = self._client.socket()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def _without_connack(self, what: str) -> ConnectionRefused:
        """A broker that does not speak `mqtt.protocol` may refuse, hang up, or never answer."""
        protocol = self._link.config.protocol
        return ConnectionRefused(
            f'{what}; if the broker does not speak MQTT {protocol} (mqtt.protocol = "{protocol}"), '
            "`handoff doctor` says which to set"
        )

    def _serve(self) -> None:
        client = self._client
        if self._announce:
            _, state_mid = client.subscribe(self._topics.state, qos=1)
            _, commands_mid = client.subscribe(self._topics.commands, qos=1)
            self._guard.subscribed(state_mid, commands_mid)
            self._drain.say_status(self._presence.status())
        else:
            self._guard.skip()
        for topic in self._router.topics:
            client.subscribe(topic, qos=1)
        last_flush = last_status = last_purge = last_check = self._clock()
        purge_due = True
        while self._connected:
            if self._inbox.stopping() and self._finish():
                return
            if self._guard.due:
                self._check_history()
            if self._announce:
                self._drain.queue_state_when_caught_up(self._presence)
            self._pump()
            now = self._clock()
            due = [last_check + STATUS_CHECK_S, last_status + STATUS_EVERY_S, last_purge + PURGE_EVERY_S]
            due.append(now + IDLE_WAIT_S)
            if self._drain.acks_pending:
                due.append(last_flush + ACK_FLUSH_S)
            if self._inbox.stopping():
                due.append(now + ACK_FLUSH_S)
            if not self._wait(max(0.0, min(due) - now)):
                self._connected = False
            now = self._clock()
            if self._drain.acks_pending and (now - last_flush >= ACK_FLUSH_S or not self._drain.in_flight):
                self._flush_acks()
                last_flush = now
            if now - last_check >= STATUS_CHECK_S:
                last_check = now
                if self._presence.changed():
                    self._presence.record(True, None)
                    self._say_status()
                    last_status = now
            if now - last_status >= STATUS_EVERY_S:
                self._say_status()
                last_status = now
            if purge_due or now - last_purge >= PURGE_EVERY_S:
                self._purge()
                purge_due, last_purge = False, now
        self._flush_acks()

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
            self._drain.woken()
        rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        if broker in readable or pending:
            rc = client.loop_read()
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS and (broker in writable or client.want_write()):
            rc = client.loop_write()
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            rc = client.loop_misc()
        return rc == MQTTErrorCode.MQTT_ERR_SUCCESS

    def _pump(self) -> None:
        """Fill the window, once the rewind guard has let anything out."""
        while self._guard.checked and self._connected and not self._drain.full:
            outgoing = self._drain.next()
            if outgoing is None:
                return
            self._send(*outgoing)

    def _send(self, sent: Sent, payload: bytes, retain: bool) -> MQTTMessageInfo:
        properties = self._props if sent.event else None
        info = self._client.publish(
            self._topics.under(sent.topic), payload, qos=1, retain=retain, properties=properties
        )
        if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._drain.sending(info.mid, sent)
        else:
            self._connected = False
            self._error = PublishNotQueued(f"publish refused by client: {info.rc.name}")
        return info

    def _check_history(self) -> None:
        self._client.unsubscribe(self._topics.state)
        try:
            self._guard.check()
        except RewindNotRecorded as exc:
            self._error = exc
            self._connected = False
            self._client.disconnect()

    def _finish(self) -> bool:
        """On stop: keep draining until the outbox is empty or the flush time is up, then leave."""
        if self._stop_deadline is None:
            self._stop_deadline = self._clock() + self._inbox.flush_timeout
        if not self._drain.drained and self._clock() < self._stop_deadline:
            return False
        self._flush_acks()
        if self._announce:
            info = self._send(Sent("status"), self._presence.offline(), retain=True)
            end = self._clock() + OFFLINE_WAIT_S
            while not info.is_published() and self._connected and (left := end - self._clock()) > 0:
                self._wait(min(left, ACK_FLUSH_S))
        self._client.disconnect()
        self._wait(0.0)
        return True

    def _flush_acks(self) -> None:
        marked = self._drain.flush_acks()
        if marked and self._outcomes.acked(marked):
            self._drain.one_event_at_a_time = False
            self._say_status()

    def _say_status(self) -> None:
        if self._announce:
            self._drain.say_status(self._presence.status())

    def _purge(self) -> None:
        try:
            self._store.purge(self._retention_days)
        except StoreError as exc:
            log.error("%s", exc)

    def _on_connect(
        self, client: Client, userdata: Any, flags: ConnectFlags, reason: ReasonCode, properties: Properties | None
    ) -> None:
        if reason.is_failure:
            refused = f"broker refused the connection: {reason}"
            if reason.value == UNSUPPORTED_PROTOCOL_VERSION:
                self._error = self._without_connack(refused)
            else:
                self._error = ConnectionRefused(refused)
            return
        self._connected = True
        self._drain.window = min(INFLIGHT, getattr(properties, "ReceiveMaximum", INFLIGHT))
        self._drain.one_event_at_a_time = self._outcomes.blocked is not None

    def _on_disconnect(
        self,
        client: Client,
        userdata: Any,
        flags: DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if self._connected and not self._inbox.stopping():
            self._error = ConnectionLost(f"connection lost: {reason}")
        self._connected = False

    def _on_publish(
        self, client: Client, userdata: Any, mid: int, reason: ReasonCode, properties: Properties | None
    ) -> None:
        sent = self._drain.settle(mid, not reason.is_failure)
        if sent is None or not reason.is_failure:
            return
        code = f"{reason} (0x{reason.value:02x})"
        if not sent.event or sent.seq is None:
            self._outcomes.refused(sent.topic, code)
            what = f"the {sent.topic} message" + (f" covering seq {sent.seq}" if sent.seq is not None else "")
            log.error("broker refused %s: %s; check its ACL for this topic", what, code)
        elif self._connected:  # the first refusal; later ones in the same read wait behind it anyway
            self._outcomes.refused(sent.topic, code, event_seq=sent.seq)
            self._error = EventRefused(f"broker refused event seq {sent.seq} on {sent.topic}: {code}")
            self._connected = False
            client.disconnect()
        else:
            self._outcomes.refused(sent.topic, code)

    def _on_subscribe(
        self, client: Client, userdata: Any, mid: int, reasons: list[ReasonCode], properties: Properties | None
    ) -> None:
        self._guard.suback(mid, reasons)

    def _on_message(self, client: Client, userdata: Any, message: MQTTMessage) -> None:
        self._router.route(message.topic, bytes(message.payload))
