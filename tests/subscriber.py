"""An MQTT subscriber for tests: collects what the appliance publishes and waits for it."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

WAIT_S = 15.0


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)


class Subscriber:
    def __init__(self, port: int, topic: str, **client_options: Any) -> None:
        self.messages: list[Message] = []
        self._changed = threading.Condition()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, **client_options)
        self._client.on_connect = lambda client, *_: client.subscribe(topic, qos=1)
        self._client.on_message = self._on_message
        self._client.reconnect_delay_set(0.1, 0.5)
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()

    def _on_message(self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        with self._changed:
            self.messages.append(Message(message.topic, bytes(message.payload), bool(message.retain)))
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[Message], bool], timeout: float = WAIT_S) -> Message:
        return self.wait_for_count(predicate, 1, timeout)[-1]

    def wait_for_count(
        self, predicate: Callable[[Message], bool], count: int, timeout: float = WAIT_S
    ) -> list[Message]:
        with self._changed:
            matched: list[Message] = []

            def enough() -> bool:
                matched[:] = [m for m in self.messages if predicate(m)]
                return len(matched) >= count

            if not self._changed.wait_for(enough, timeout):
                seen = [m.topic for m in self.messages]
                raise AssertionError(f"expected {count} matching messages within {timeout} s, saw {seen}")
            return matched[:count]

    def retained(self, topic: str) -> Any:
        """The latest message on a retained topic, as the appliance last published it."""
        return [m for m in self.messages if m.topic == topic][-1].json()

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()
