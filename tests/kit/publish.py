"""Publishing chosen messages (good, poison, forged, retained) to a broker with paho, in either
protocol, as anyone with publish rights could, waiting until the broker has acknowledged every
one: the ledger tests' hand-made appliance and forger."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Literal

from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion


def publish(
    port: int,
    messages: Iterable[tuple[str, bytes, bool]],
    protocol: Literal["5", "3.1.1"] = "5",
    timeout: float = 30.0,
    username: str | None = None,
) -> None:
    """Each (topic, payload, retain) at QoS 1; returns once every PUBACK is in."""
    connected = threading.Event()
    client = Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id="",
        protocol=MQTTProtocolVersion.MQTTv5 if protocol == "5" else MQTTProtocolVersion.MQTTv311,
    )
    if username:
        client.username_pw_set(username)
    client.on_connect = lambda *_: connected.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert connected.wait(timeout), "the broker did not accept the publisher"
        sent = [client.publish(topic, payload, qos=1, retain=retain) for topic, payload, retain in messages]
        for info in sent:
            info.wait_for_publish(timeout)
    finally:
        client.disconnect()
        client.loop_stop()
