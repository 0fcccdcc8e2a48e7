"""The publisher over mutual TLS against a real mosquitto, with an ACL, and with a wrong CA."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion

from handoff import db
from handoff.config import MqttConfig
from handoff.mqtt.publisher import Publisher, PublisherSettings
from handoff.store import Store
from tests.kit.config import PREFIX
from tests.kit.outbox import CONTEXT, checkout, in_use, mqtt_config, publisher
from tests.kit.pki import Ca, make_ca, write_cert, write_key
from tests.kit.tls_broker import tls_broker

OTHER_DEVICE = "handoff/v1/st-elsewhere/WOW-OTHER/events/checkout"
ACL = """use_identity_as_username true
acl_file {acl}
"""
RULES = f"""user rdr-0042
topic write {PREFIX}/#
topic read {PREFIX}/cmd/#
topic read {PREFIX}/state

user watcher
topic read handoff/v1/#
"""


def identity(ca: Ca, directory: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = write_cert(ca.sign(subject, key.public_key(), server=False), directory / f"{name}.pem")
    return cert, write_key(key, directory / f"{name}.key")


class TlsWatcher:
    """Subscribed once made (the SUBACK is waited for): the events are not retained."""

    def __init__(self, port: int, ca_file: Path, cert: tuple[Path, Path]) -> None:
        self.messages: list[tuple[str, bytes]] = []
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="watcher")
        self.client.tls_set(ca_certs=str(ca_file), certfile=str(cert[0]), keyfile=str(cert[1]))
        self.client.on_connect = lambda c, *_: c.subscribe("handoff/v1/#", qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = lambda _c, _u, m: self.messages.append((m.topic, bytes(m.payload)))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(15), "the TLS broker did not confirm the watcher's subscription"

    def events(self) -> list[int]:
        return [json.loads(p)["data"]["seq"] for t, p in self.messages if "/events/" in t]

    def wait_events(self, count: int) -> list[int]:
        deadline = time.monotonic() + 15
        while len(self.events()) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.events()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def tls_config(port: int, ca_file: Path, cert: tuple[Path, Path]) -> MqttConfig:
    return mqtt_config(
        port,
        url=f"mqtts://127.0.0.1:{port}",
        allow_insecure=False,
        ca_file=ca_file,
        cert_file=cert[0],
        key_file=cert[1],
    )


def commit_events(data: Path, count: int) -> Store:
    store = Store(db.connect(data))
    for index in range(count):
        store.commit(in_use("alice"), [checkout(f"s{index}")], CONTEXT)
    return store


def make_publisher(config: MqttConfig, data: Path) -> Publisher:
    return publisher(config, data, settings=PublisherSettings(backoff_base_s=0.05, backoff_cap_s=0.2))


def test_mutual_tls_with_an_acl_confining_the_appliance_to_its_topics(tmp_path: Path) -> None:
    ca = make_ca()
    acl = tmp_path / "acl"
    acl.write_text(RULES)
    appliance_id = identity(ca, tmp_path, "rdr-0042")
    with tls_broker(ca, tmp_path / "broker", ACL.format(acl=acl)) as broker:
        watcher = TlsWatcher(broker.port, broker.ca_file, identity(ca, tmp_path, "watcher"))
        data = tmp_path / "data"
        commit_events(data, 5)
        running = make_publisher(tls_config(broker.port, broker.ca_file, appliance_id), data)
        running.start()
        try:
            assert watcher.wait_events(5) == [1, 2, 3, 4, 5]
        finally:
            running.stop(flush_timeout=2)
        intruder = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="rdr-0042-spoof")
        intruder.tls_set(ca_certs=str(broker.ca_file), certfile=str(appliance_id[0]), keyfile=str(appliance_id[1]))
        intruder.connect("127.0.0.1", broker.port)
        intruder.loop_start()
        intruder.publish(OTHER_DEVICE, b'{"forged": true}', qos=1).wait_for_publish(5)
        intruder.publish(f"{PREFIX}/events/checkout", b'{"data": {"seq": 99}}', qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 5
        while 99 not in watcher.events() and time.monotonic() < deadline:
            time.sleep(0.05)
        intruder.loop_stop()
        intruder.disconnect()
        watcher.close()
    assert 99 in watcher.events(), "the same identity may publish under its own device"
    assert OTHER_DEVICE not in [topic for topic, _ in watcher.messages], "but not as another device"


def test_wrong_ca_is_refused_and_nothing_is_lost(tmp_path: Path) -> None:
    ca, impostor = make_ca(), make_ca("Some Other CA")
    appliance_id = identity(ca, tmp_path, "rdr-0042")
    with tls_broker(ca, tmp_path / "broker") as broker:
        data = tmp_path / "data"
        store = commit_events(data, 3)
        wrong = make_publisher(tls_config(broker.port, impostor.write(tmp_path / "wrong-ca.pem"), appliance_id), data)
        wrong.start()
        deadline = time.monotonic() + 10
        while (store.link() is None or not store.link().last_error) and time.monotonic() < deadline:  # type: ignore[union-attr]
            time.sleep(0.05)
        link = store.link()
        wrong.stop(flush_timeout=0)
        assert link is not None and not link.connected
        assert link.last_error is not None and "CERTIFICATE_VERIFY_FAILED" in link.last_error
        assert store.depth() == 3
        watcher = TlsWatcher(broker.port, broker.ca_file, identity(ca, tmp_path, "watcher"))
        right = make_publisher(tls_config(broker.port, broker.ca_file, appliance_id), data)
        right.start()
        try:
            assert watcher.wait_events(3) == [1, 2, 3]
        finally:
            right.stop(flush_timeout=2)
            watcher.close()
