"""A publisher thread that dies says so: status, the fault light, a log line, and no more watchdog pings.

The appliance is put together by `runtime.wiring.build`, as `handoff run` does, in this process so
its pins can be gpiozero's MockFactory (no GPIO here) and its notify socket one the test binds, as
systemd would. The failure is a real one, provoked from outside: an outbox row whose topic holds
an MQTT wildcard (as a hand edit of the database could leave), which paho refuses to publish
with a ValueError that no code path expects.
"""

from __future__ import annotations

import logging
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from handoff import db
from handoff.cloudevents import uuid7
from handoff.config import load_config
from handoff.core.state import initial_state
from handoff.db import DB_NAME
from handoff.feedback.board import load_board
from handoff.runtime.appliance import Stop
from handoff.runtime.wiring import build
from handoff.store import Store
from tests.kit.broker import Broker
from tests.kit.cli import CliRunner
from tests.kit.collector import Collector
from tests.kit.config import PREFIX, Layout
from tests.kit.gpio import mock_pins
from tests.kit.net import free_udp_port
from tests.kit.outbox import CONTEXT
from tests.kit.wait import wait_for

WATCHDOG_S = 2.0
RED = load_board("pi-cart-v1").pins["red"]


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        monkeypatch.setenv("WATCHDOG_USEC", str(int(WATCHDOG_S * 1e6)))
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
        yield server


def _poison_the_outbox(data_dir: Path) -> None:
    """The next seq, numbered as a commit numbers it, on a topic no broker can take."""
    Store(db.connect(data_dir)).commit(initial_state(time.time()), (), CONTEXT)
    conn = sqlite3.connect(data_dir / DB_NAME, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    seq = conn.execute("UPDATE appliance_state SET last_seq = last_seq + 1 RETURNING last_seq").fetchone()[0]
    conn.execute(
        "INSERT INTO outbox (seq, id, topic, payload, created) VALUES (?, ?, 'events/#', x'7b7d', ?)",
        (seq, uuid7(time.time()), time.time()),
    )
    conn.execute("COMMIT")
    conn.close()


def _pings(server: socket.socket, within: float) -> list[str]:
    """What reached the notify socket within `within` seconds."""
    got: list[str] = []
    deadline = time.monotonic() + within
    while (left := deadline - time.monotonic()) > 0:
        server.settimeout(left)
        try:
            got.append(server.recv(256).decode())
        except TimeoutError:
            break
    return got


def test_a_dead_publisher_lights_the_fault_says_so_and_stops_feeding_the_watchdog(
    appliance: Layout, cli: CliRunner, notify_socket: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with Broker(appliance.root / "broker") as broker, mock_pins() as pins:
        appliance.configure(
            port=broker.port,
            readers=[{"kind": "nfc", "path": f"udp:127.0.0.1:{free_udp_port()}"}],
            feedback={"board": "pi-cart-v1"},
        )
        status = Collector(broker.port, f"{PREFIX}/status")
        parts = build(load_config(appliance.config), new_id=lambda: uuid7(time.time()))
        running = threading.Thread(target=parts.run)
        running.start()
        try:
            status.wait_for(lambda m: m.json()["status"] == "online")
            assert "WATCHDOG=1" in _pings(notify_socket, WATCHDOG_S)
            assert not pins.pin(RED).state

            _poison_the_outbox(appliance.data_dir)
            parts.publisher.wake()

            assert wait_for(lambda: parts.publisher.fault), "the publisher should have failed on the poisoned row"
            assert wait_for(lambda: pins.pin(RED).state, timeout=2.0), "the fault light stays off"
            _pings(notify_socket, 1.5)
            assert "WATCHDOG=1" not in _pings(notify_socket, 2 * WATCHDOG_S), "systemd would never restart it"
            status.wait_for(lambda m: m.json()["status"] == "offline")
            shown = cli("status", "-c", appliance.config)
            assert "WARNING publisher thread failed: ValueError: Publish topic cannot contain wildcards" in shown.stdout
            assert "broker: disconnected" in shown.stdout, shown.stdout
        finally:
            parts.appliance.submit(Stop())
            running.join(10)
            status.close()
    failures = [r for r in caplog.records if r.levelno == logging.CRITICAL and "publisher thread failed" in r.message]
    assert len(failures) == 1 and "nothing is published until the appliance restarts" in failures[0].message
    assert not running.is_alive()


def test_the_next_run_forgets_the_fault_once_it_publishes(appliance: Layout, cli: CliRunner) -> None:
    store = Store(db.connect(appliance.data_dir))
    store.record_fault("publisher thread failed: ValueError: from the run before")
    with Broker(appliance.root / "broker") as broker:
        appliance.configure(port=broker.port, readers=[{"kind": "nfc", "path": f"udp:127.0.0.1:{free_udp_port()}"}])
        parts = build(load_config(appliance.config), new_id=lambda: uuid7(time.time()))
        running = threading.Thread(target=parts.run)
        running.start()
        try:
            assert wait_for(lambda: store.fault() is None)
            assert "publisher thread failed" not in cli("status", "-c", appliance.config).stdout
        finally:
            parts.appliance.submit(Stop())
            running.join(10)
