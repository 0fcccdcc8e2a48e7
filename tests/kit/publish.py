"""Publishing raw messages on a test broker with paho, as anyone with publish rights could."""

from __future__ import annotations

from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion


def publish(port: int, messages: list[tuple[str, bytes, bool]]) -> None:
    """Each (topic, payload, retained) at QoS 1, returning once the broker has them all."""
    client = Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        sent = [client.publish(topic, payload, qos=1, retain=retain) for topic, payload, retain in messages]
        for info in sent:
            info.wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()
