"""A real mosquitto for tests: started on a free loopback port, stoppable and restartable there.

Persistence is on (in the test's directory) so subscriptions and queued messages survive a
restart, as they would on the hospital broker. `extra` lines add TLS listeners options or an
ACL; the runtime tests reuse this module.
"""

from __future__ import annotations

import getpass
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from paho.mqtt.client import Client, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.netutil import free_tcp_port

MOSQUITTO = "/usr/sbin/mosquitto"


class Broker:
    def __init__(self, workdir: Path, extra: str = "", anonymous: bool = True) -> None:
        self.workdir = workdir
        self.port = free_tcp_port()
        workdir.mkdir(parents=True, exist_ok=True)
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            f"allow_anonymous {'true' if anonymous else 'false'}\n"
            "persistence true\n"
            f"persistence_location {workdir}/\n"
            "max_queued_messages 100000\n"
            "log_dest stderr\n"
            # Started as root, mosquitto drops to user `mosquitto`, which cannot write pytest's
            # private temporary directory: stay who we are so persistence actually persists.
            f"user {getpass.getuser()}\n"
            f"{extra}\n"
        )
        self.log = workdir / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("mosquitto did not start listening")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(10)
            self._proc = None

    def __enter__(self) -> Broker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Collector:
    """A persistent-session QoS 1 subscriber that keeps every message it gets, across restarts.

    The session must outlive the connection (session expiry on MQTT 5), or messages published
    while it reconnects after a broker restart are lost and a test sees a gap that isn't ours.
    """

    port: int
    topic: str
    messages: list[MQTTMessage] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.client = Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"collector-{free_tcp_port()}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(self.topic, qos=1)
        self.client.reconnect_delay_set(0.05, 0.2)
        session = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        session.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", self.port, clean_start=False, properties=session)
        self.client.loop_start()

    def _on_message(self, client: Client, userdata: object, message: MQTTMessage) -> None:
        with self._lock:
            self.messages.append(message)

    def snapshot(self) -> list[MQTTMessage]:
        with self._lock:
            return list(self.messages)

    def wait_for(self, predicate: object, timeout: float = 20.0) -> list[MQTTMessage]:
        assert callable(predicate)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.snapshot()
            if predicate(got):
                return got
            time.sleep(0.02)
        return self.snapshot()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
