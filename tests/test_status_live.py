"""`handoff status` is true within a second of any change, readers included."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from handoff import db
from handoff.store import Store
from tests.kit.appliance import ANA, Running
from tests.kit.broker import Broker
from tests.kit.cli import CliRunner
from tests.kit.config import Layout
from tests.kit.outbox import mqtt_config, publisher
from tests.kit.wait import wait_for


class OpensWhileRead:
    """A reader that finishes opening just as the publisher first reads its health: the race that
    left `handoff status` saying `not opened yet` for as long as nothing else changed."""

    def __init__(self) -> None:
        self.health = [{"reader": "nfc:udp", "ok": False, "detail": "not opened yet"}]
        self.opened_at: float | None = None
        self._lock = threading.Lock()

    def __call__(self) -> list[dict[str, Any]]:
        with self._lock:
            said = self.health
            if self.opened_at is None:
                self.health = [{"reader": "nfc:udp", "ok": True, "detail": "open"}]
                self.opened_at = time.monotonic()
            return said


def test_a_reader_opening_during_the_first_record_reaches_status_within_a_second(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = Store(db.connect(data))
    reader = OpensWhileRead()
    with Broker(tmp_path / "broker") as broker:
        running = publisher(mqtt_config(broker.port), data, health_provider=reader)
        running.start()
        try:
            readers = wait_for(
                lambda: (link := store.link()) is not None and link.readers[0]["ok"] and time.monotonic()
            )
        finally:
            running.stop()
    assert readers and reader.opened_at is not None
    assert readers - reader.opened_at < 1.0


@pytest.fixture
def running(appliance: Layout, cli: CliRunner, tmp_path: Path) -> Iterator[Running]:
    with Broker(tmp_path / "broker") as broker:
        app = Running(appliance, broker, cli, {"retap_guard_s": 0.5})
        yield app
        if app.process is not None:
            app.stop()
        app.events.close()


def test_after_a_tap_status_says_the_reader_works(running: Running, appliance: Layout, cli: CliRunner) -> None:
    running.tap(ANA)
    running.event_types(1)
    result = cli("status", "-c", appliance.config)
    assert result.returncode == 0, result.stderr
    readers = [line for line in result.stdout.splitlines() if line.startswith("reader: ")]
    assert len(readers) == 1 and "ok=True" in readers[0], result.stdout
