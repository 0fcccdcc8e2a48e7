"""Drain: 20,000 events buffered offline, then the broker started, until the last PUBACK is
recorded; versus a bare paho QoS 1 loop publishing the same payloads, with the same CloudEvents
content-type property, to the same broker with the same number of messages in flight.

The store has an audit key, as every provisioned appliance does, and signs each commit's events
after it as the appliance does after its cue; the bare loop sends the same signed events.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from handoff import db
from handoff.audit.checkpoint import CheckpointPolicy
from handoff.mqtt.connection import event_properties
from handoff.mqtt.drain import INFLIGHT
from handoff.mqtt.publisher import PublisherSettings
from handoff.store import Store
from handoff.testing.broker import Broker
from handoff.testing.config import PREFIX
from handoff.testing.outbox import CONTEXT, checkout, in_use, mqtt_config
from handoff.testing.outbox import publisher as make_publisher

EVENTS = 20_000


KEY = Ed25519PrivateKey.generate()


def buffer_offline(data: Path) -> list[bytes]:
    """The backlog, signed as the appliance signs it, and the same events as the broker will receive them."""
    store = Store(db.connect(data), checkpoints=CheckpointPolicy(KEY, EVENTS * 2, 86400.0))
    events = [checkout(f"s{i}") for i in range(100)]
    payloads: list[bytes] = []
    for _ in range(EVENTS // len(events)):
        stored = store.commit(in_use("alice"), events, CONTEXT)
        store.sign(stored)
        payloads += [store.outgoing(e) for e in stored]
    return payloads


def drain(broker: Broker, data: Path) -> float:
    store = Store(db.connect(data))
    publisher = make_publisher(
        mqtt_config(broker.port),
        data,
        version="bench",
        settings=PublisherSettings(backoff_base_s=0.01, backoff_cap_s=0.05),
        key=KEY,
    )
    publisher.start()
    broker.start()
    start = time.perf_counter()  # from the moment the broker listens: its own boot is not ours to count
    while store.unsent(limit=1):  # not depth(): counting the backlog every poll would tax the run
        time.sleep(0.005)
    elapsed = time.perf_counter() - start
    publisher.stop()
    return EVENTS / elapsed


def bare(broker: Broker, payloads: list[bytes]) -> float:
    done = threading.Event()
    acked = 0

    def on_publish(*_: object) -> None:
        nonlocal acked
        acked += 1
        if acked == len(payloads):
            done.set()

    properties = event_properties(mqtt_config(broker.port))
    client = Client(CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=MQTTProtocolVersion.MQTTv5)
    client.max_inflight_messages_set(INFLIGHT)
    client.on_publish = on_publish
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    start = time.perf_counter()
    for payload in payloads:
        client.publish(f"{PREFIX}/events/checkout", payload, qos=1, properties=properties)
    done.wait(300)
    elapsed = time.perf_counter() - start
    client.loop_stop()
    client.disconnect()
    return len(payloads) / elapsed


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        payloads = buffer_offline(data)
        # mosquitto announces Receive Maximum 20 unless told otherwise, and the publisher obeys it;
        # the bare loop would not, so both get the same window.
        broker = Broker(Path(tmp) / "broker", extra=f"max_inflight_messages {INFLIGHT}")
        try:
            ours = drain(broker, data)
            baseline = bare(broker, payloads)
        finally:
            broker.stop()
    print(
        f"drain of {EVENTS} buffered signed events: {ours:.0f} events/s; "
        f"bare paho QoS 1 loop of the same signed events: {baseline:.0f} /s"
    )
    print(f"drain ratio: {ours / baseline:.2f} (target >= 0.7)")


if __name__ == "__main__":
    main()
