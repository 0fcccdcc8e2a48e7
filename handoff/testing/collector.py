"""The one MQTT collector: subscribes like a consumer would, keeps every message, and waits for them.

Its session outlives the connection (MQTT 5 session expiry, clean start off; on 3.1.1 clean
session off), or messages
published while it reconnects after a broker restart are lost and a test sees a gap that
isn't the appliance's.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from paho.mqtt.client import Client, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from handoff.testing.net import free_tcp_port

WAIT_S = 20.0


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool
    properties: Properties | None = None

    def json(self) -> Any:
        return json.loads(self.payload)


class Collector:
    """Subscribed once made: a message published after the constructor returns is not missed."""

    def __init__(
        self, port: int, topic: str, on_message: Callable[[Message], None] | None = None, protocol: str = "5"
    ) -> None:
        v5 = protocol == "5"
        self.messages: list[Message] = []
        self._on_each = on_message
        self._changed = threading.Condition()
        self.client = Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"collector-{free_tcp_port()}",
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
            clean_session=None if v5 else False,
        )
        self._subscribed = threading.Event()
        self.client.on_message = self._on_message
        self.client.on_connect = lambda client, *_: client.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.reconnect_delay_set(0.05, 0.2)  # type: ignore[arg-type]  # paho sleeps fractions too
        if v5:
            session = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            session.SessionExpiryInterval = 3600
            self.client.connect("127.0.0.1", port, clean_start=False, properties=session)
        else:
            self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self._subscribed.wait(WAIT_S):
            raise AssertionError(f"the broker on port {port} did not confirm the subscription to {topic}")

    def _on_message(self, _client: Client, _userdata: object, message: MQTTMessage) -> None:
        got = Message(message.topic, bytes(message.payload), bool(message.retain), message.properties)
        if self._on_each is not None:
            self._on_each(got)
        with self._changed:
            self.messages.append(got)
            self._changed.notify_all()

    def snapshot(self) -> list[Message]:
        with self._changed:
            return list(self.messages)

    def wait_until(self, predicate: Callable[[list[Message]], bool], timeout: float = WAIT_S) -> list[Message]:
        """Everything received once `predicate` holds for it, or at the timeout: the caller asserts.

        Woken by each message, and every 50 ms for predicates that also look at something else.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(list(self.messages)) and (left := deadline - time.monotonic()) > 0:
                self._changed.wait(min(left, 0.05))
            return list(self.messages)

    def wait_for(self, predicate: Callable[[Message], bool], timeout: float = WAIT_S) -> Message:
        return self.wait_for_count(predicate, 1, timeout)[-1]

    def wait_for_count(
        self, predicate: Callable[[Message], bool], count: int, timeout: float = WAIT_S
    ) -> list[Message]:
        got = self.wait_until(lambda messages: sum(map(predicate, messages)) >= count, timeout)
        matched = [m for m in got if predicate(m)]
        if len(matched) < count:
            raise AssertionError(f"expected {count} matching messages within {timeout} s, saw {[m.topic for m in got]}")
        return matched[:count]

    def retained(self, topic: str) -> Any:
        """The latest message on a retained topic, as the appliance last published it."""
        return [m for m in self.snapshot() if m.topic == topic][-1].json()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
