"""The ledger's MQTT session, in a process of its own.

paho reads, decodes and acknowledges every message holding the interpreter's lock: in the
ledger's process that was about a quarter of the time a backlog's ingest held it, time the
parsing, verifying and writing of the batches waited for (bench/README.md). In a child process
it runs on another core. The child decides nothing: the ledger asks it for the next batch, and
it acknowledges a message only when the ledger says the batch holding it committed, so a
message is still either stored or at the broker, whichever process dies. One exchange per batch:
handing each message over as it arrived cost the two processes more than paho itself.

The child holds at most `receive_maximum` unacknowledged messages: waiting in paho's callback
is what stops paho reading the socket. It ignores SIGTERM and SIGINT, which a service manager
and a terminal send to the whole group: it stops when the ledger says so, or when its pipe to
the ledger closes (the ledger died), leaving what it holds unacknowledged for the next session.
The ledger starts another if it dies; what it held comes again from the broker.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import random
import signal
import threading
import time
from multiprocessing.connection import Connection
from typing import Any, Final, NamedTuple

from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags, MQTTMessage
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from handoff.config import MqttConfig
from handoff.ledger.config import LedgerMqttConfig
from handoff.ledger.unreachable import Outage
from handoff.logs import configure_logging
from handoff.mqtt import connection
from handoff.mqtt.backoff import backoff_delay

log = logging.getLogger("handoff.ledger")

BATCH_MAX: Final = 4000
"""The most messages one batch holds: one commit, one fsync, for that many. A batch's commit
waits on the database through some twenty statements whatever its size, so a backlog goes
faster in bigger batches (about 5,000 events/s with 2,000, 5,500 with 4,000: bench/README.md)."""
RECEIVE_MAXIMUM: Final = 4 * BATCH_MAX
"""Unacknowledged messages the broker may send at once, and the most the ledger holds: while one
batch is written and the next verified, the MQTT process fills two more (with room for only
those two, it waited on the broker after each commit: 2,350-2,420 events/s of a backlog against
2,730-3,310 with this room, bench/README.md)."""
ANSWER_WAIT_S: Final = 5.0
"""Beyond what a take itself waits: a child that has not answered by then is stuck."""
PUBLISH_WAIT_S: Final = 1.0
"""A publish is answered at once; the ledger asks it inside a database transaction, which a
stuck child must not hold for long."""
STOP_WAIT_S: Final = 10.0
RESTART_BASE_S: Final = 0.5
RESTART_CAP_S: Final = 30.0


class Received(NamedTuple):
    """Messages as four columns: a batch crosses to the ledger as four lists of plain values,
    which pickle in a third of the time as many tuples take, and unpickle in a quarter."""

    topics: list[str]
    payloads: list[bytes]
    mids: list[int]
    qos: list[int]

    def add(self, message: MQTTMessage) -> None:
        self.topics.append(message.topic)
        self.payloads.append(bytes(message.payload))
        self.mids.append(message.mid)
        self.qos.append(message.qos)

    def split(self, most: int) -> tuple[Received, Received]:
        """The first `most` messages, and the rest."""
        topics, payloads, mids, qos = self
        first = Received(topics[:most], payloads[:most], mids[:most], qos[:most])
        return first, Received(topics[most:], payloads[most:], mids[most:], qos[most:])


def nothing() -> Received:
    return Received([], [], [], [])


class Ack(NamedTuple):
    """A committed message: `life` is the child that received it (its number among the children
    this ledger started); another child's session does not know its `mid`."""

    life: int
    mid: int
    qos: int


class Taken(NamedTuple):
    life: int
    received: Received
    arrived: float | None
    """When the oldest of them reached the child."""
    connected: bool
    """Whether the child's session was connected when it answered."""
    published: list[tuple[int, str | None]]
    """The ledger's publishes the broker acknowledged since the last take: message id, and why
    it refused the message (None when it took it)."""


def subscriptions(mqtt: LedgerMqttConfig) -> list[str]:
    prefix = mqtt.topic_prefix.rstrip("/")
    share = f"$share/{mqtt.shared_group}/" if mqtt.shared_group else ""
    kinds = ("events/#", "state", "status", "receipts", "checkpoint", "cmd_result")
    return [f"{share}{prefix}/+/+/{kind}" for kind in kinds]


class Receiver:
    """The ledger's end, used from one thread: starts the child, asks it for batches, starts
    another if it dies. What the child reports between batches (the connection, PUBACKs of what
    the ledger published) comes with the next batch."""

    def __init__(
        self, mqtt: MqttConfig, subscriptions: list[str], receive_maximum: int, stopping: threading.Event
    ) -> None:
        self._mqtt = mqtt
        self._subscriptions = subscriptions
        self._receive_maximum = receive_maximum
        self._stopping = stopping
        self._context = multiprocessing.get_context("spawn")
        self._life = 0
        self._restarts = 0
        self._broken = False
        """The child died or stopped answering: the next take replaces it."""
        self._pipe: Connection | None = None
        self._process: multiprocessing.process.BaseProcess | None = None

    def start(self) -> None:
        ours, theirs = self._context.Pipe()
        process = self._context.Process(
            target=serve,
            args=(self._mqtt, self._subscriptions, self._receive_maximum, theirs),
            name="handoff-ledger-mqtt",
            daemon=True,
        )
        process.start()
        theirs.close()
        self._life += 1
        self._broken = False
        self._pipe, self._process = ours, process

    def take(self, most: int, first_s: float, fill_s: float) -> Taken:
        """Up to `most` messages: waits up to `first_s` for one, then up to `fill_s` for `most`."""
        answer = self._ask(("take", most, first_s, fill_s), first_s + fill_s + ANSWER_WAIT_S)
        if answer is None:
            if not self._stopping.is_set():
                self._replace()
            return Taken(self._life, nothing(), None, False, [])
        _, received, arrived, connected, published = answer
        return Taken(self._life, received, arrived, connected, published)

    def ack(self, acks: list[Ack]) -> None:
        """Acknowledges what the current child received; the rest its broker sends again."""
        mine = [(mid, qos) for life, mid, qos in acks if life == self._life]
        if mine and self._pipe is not None:
            with contextlib.suppress(OSError):
                self._pipe.send(("ack", mine))

    def publish(self, topic: str, payload: bytes) -> int | None:
        """The message id paho gave the publish, or None if the child did not answer: the command
        stays due, and the next take (outside any transaction) starts another child."""
        answer = self._ask(("publish", topic, payload), PUBLISH_WAIT_S)
        return None if answer is None else answer[1]

    def stop(self) -> None:
        if self._pipe is not None:
            with contextlib.suppress(OSError):
                self._pipe.send(("stop",))
        if self._process is not None:
            self._process.join(STOP_WAIT_S)
            if self._process.is_alive():
                self._process.terminate()
                self._process.join()

    def _ask(self, request: tuple[object, ...], within_s: float) -> tuple[Any, ...] | None:
        """The child's answer; None when it died or did not answer within `within_s` (then it is
        marked broken: a late answer must not be read as the answer to the next request)."""
        assert self._pipe is not None
        if self._stopping.is_set() or self._broken:
            return None
        try:
            self._pipe.send(request)
            if self._pipe.poll(within_s):
                answer: tuple[Any, ...] = self._pipe.recv()
                self._restarts = 0
                return answer
        except (EOFError, OSError):
            pass
        self._broken = True
        return None

    def _replace(self) -> None:
        assert self._pipe is not None and self._process is not None
        self._pipe.close()
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()
        log.error(
            "the ledger's MQTT process ended (exit status %s); starting another, and the broker "
            "sends again what it held unacknowledged",
            self._process.exitcode,
        )
        if not self._stopping.wait(backoff_delay(self._restarts, RESTART_BASE_S, RESTART_CAP_S, random.random)):
            self._restarts += 1
            self.start()


def serve(mqtt: MqttConfig, subscriptions: list[str], receive_maximum: int, ledger: Connection) -> None:
    """The child's whole life."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    configure_logging()
    _Session(mqtt, subscriptions, receive_maximum, ledger).run()


class _Session:
    def __init__(self, mqtt: MqttConfig, subscriptions: list[str], receive_maximum: int, ledger: Connection) -> None:
        self._mqtt = mqtt
        self._subscriptions = subscriptions
        self._receive_maximum = receive_maximum
        self._ledger = ledger
        lock = threading.Lock()
        self._arrived = threading.Condition(lock)
        self._room = threading.Condition(lock)
        self._received = nothing()
        self._first_arrived: float | None = None
        self._wanted = 0
        """While a take waits: how many received messages should wake it (paho's thread notifies
        only then, not for every message)."""
        self._held = 0
        self._most_held = 0
        self._connected = False
        self._published: list[tuple[int, str | None]] = []
        self._stopping = False
        self._broker = Outage(f"broker {mqtt.host}:{mqtt.port}", time.time)
        context = connection.tls_context(mqtt) if mqtt.tls else None
        self._client = connection.consumer_client(mqtt, context, connection.password(mqtt))
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_publish = self._on_publish

    def run(self) -> None:
        self._client.connect_async(
            self._mqtt.host,
            self._mqtt.port,
            keepalive=connection.KEEPALIVE_S,
            clean_start=connection.clean_start(self._mqtt),
            properties=connection.connect_properties(self._mqtt, self._receive_maximum),
        )
        self._client.loop_start()
        try:
            self._obey()
        finally:
            with self._arrived:
                self._stopping = True
                self._room.notify()
            self._client.disconnect()
            self._client.loop_stop()
            log.info("MQTT session ended; at most %d messages held unacknowledged at once", self._most_held)

    def _obey(self) -> None:
        """What the ledger asks, until it says stop or is gone."""
        while True:
            try:
                request = self._ledger.recv()
            except (EOFError, OSError):
                return
            match request:
                case ("take", int() as most, float() as first_s, float() as fill_s):
                    answer: tuple[object, ...] = self._take(most, first_s, fill_s)
                case ("ack", list() as acks):
                    for mid, qos in acks:
                        self._client.ack(mid, qos)
                    with self._room:
                        self._held -= len(acks)
                        self._room.notify()
                    continue
                case ("publish", str() as topic, bytes() as payload):
                    answer = ("mid", self._client.publish(topic, payload, qos=1).mid)
                case _:
                    return
            try:
                self._ledger.send(answer)
            except OSError:
                return

    def _take(self, most: int, first_s: float, fill_s: float) -> tuple[object, ...]:
        with self._arrived:
            self._wanted = 1
            self._arrived.wait_for(lambda: bool(self._received.mids), first_s)
            if self._received.mids and len(self._received.mids) < most:
                self._wanted = most
                self._arrived.wait_for(lambda: len(self._received.mids) >= most, fill_s)
            self._wanted = 0
            taken, self._received = self._received.split(most)
            arrived = self._first_arrived
            if not self._received.mids:
                self._first_arrived = None
            published, self._published = self._published, []
            return ("taken", taken, arrived, self._connected, published)

    def _on_message(self, client: Client, userdata: object, message: MQTTMessage) -> None:
        with self._arrived:
            self._room.wait_for(lambda: self._held < self._receive_maximum or self._stopping)
            if self._stopping:
                return
            if not self._received.mids:
                self._first_arrived = time.time()
            self._received.add(message)
            self._held += 1
            self._most_held = max(self._most_held, self._held)
            if len(self._received.mids) == self._wanted:
                self._arrived.notify()

    def _on_connect(
        self, client: Client, userdata: object, flags: ConnectFlags, reason: ReasonCode, properties: Properties | None
    ) -> None:
        if reason.is_failure:
            self._broker.down(f"it refused the ledger: {reason}")
            return
        self._broker.up()
        log.info(
            "connected to %s:%s (session %s)",
            self._mqtt.host,
            self._mqtt.port,
            "resumed" if flags.session_present else "new",
        )
        client.subscribe([(topic, 1) for topic in self._subscriptions])
        with self._arrived:
            self._connected = True

    def _on_disconnect(
        self,
        client: Client,
        userdata: object,
        flags: DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._arrived:
            self._connected = False
        if not self._stopping:
            self._broker.down(f"connection lost: {reason}")

    def _on_connect_fail(self, client: Client, userdata: object) -> None:
        self._broker.down("cannot connect")

    def _on_publish(
        self, client: Client, userdata: object, mid: int, reason: ReasonCode, properties: Properties | None
    ) -> None:
        with self._arrived:
            self._published.append((mid, str(reason) if reason.is_failure else None))
