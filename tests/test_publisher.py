"""The publisher against a real mosquitto: order, outages, retained state and status, commands."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from handoff import db
from handoff.cloudevents import CONTENT_TYPE
from handoff.mqtt import session as session_module
from handoff.mqtt.publisher import Publisher, PublisherSettings
from handoff.outbox import StoredEvent
from handoff.store import Store
from tests.kit.broker import Broker
from tests.kit.collector import Collector
from tests.kit.config import PREFIX
from tests.kit.mqtt_tap import MqttTap
from tests.kit.outbox import CONTEXT, checkout, in_use, mqtt_config, publisher, seqs

FAST = PublisherSettings(backoff_base_s=0.05, backoff_cap_s=0.3)


def make_publisher(port: int, data: Path, **kwargs: Any) -> Publisher:
    return publisher(mqtt_config(port), data, version="9.9", settings=FAST, **kwargs)


def test_outage_delivers_everything_in_order(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = Store(db.connect(data))
    with Broker(tmp_path / "broker") as broker:
        events = Collector(broker.port, f"{PREFIX}/events/#")
        publisher = make_publisher(broker.port, data)
        publisher.start()
        try:
            for i in range(20):
                store.commit(in_use(f"s{i}"), [checkout(f"s{i}")], CONTEXT)
                publisher.wake()
            events.wait_until(lambda got: len(got) >= 20)
            broker.stop()
            for i in range(20, 150):
                store.commit(in_use(f"s{i}"), [checkout(f"s{i}")], CONTEXT)
                publisher.wake()
            assert store.depth() >= 130
            broker.start()
            got = events.wait_until(lambda got: len({m.payload for m in got}) >= 150)
        finally:
            publisher.stop()
            events.close()
    received = seqs([m.payload for m in got])
    assert sorted(set(received)) == list(range(1, 151))
    deduped = list(dict.fromkeys(received))
    assert deduped == sorted(deduped), "events arrived out of seq order"
    assert {m.topic for m in got} == {f"{PREFIX}/events/checkout"}
    assert got[0].properties is not None and got[0].properties.ContentType == CONTENT_TYPE
    assert store.depth() == 0
    link = store.link()
    assert link is not None and link.connected is False and link.last_error == "stopped"


def test_retained_state_status_and_commands(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = Store(db.connect(data))
    commands: list[tuple[str, bytes]] = []
    with Broker(tmp_path / "broker") as broker:
        publisher = make_publisher(
            broker.port,
            data,
            on_command=lambda name, payload: commands.append((name, payload)),
            health_provider=lambda: [{"reader": "nfc0", "ok": True}],
        )
        publisher.start()
        store.commit(in_use("alice"), [checkout("alice")], CONTEXT)
        publisher.wake()
        watcher = Collector(broker.port, f"{PREFIX}/#")
        try:
            got = watcher.wait_until(lambda got: {m.topic for m in got} >= {f"{PREFIX}/state", f"{PREFIX}/status"})
            by_topic = {m.topic: m for m in got}
            state = json.loads(by_topic[f"{PREFIX}/state"].payload)
            assert (state["state"], state["staff_id"], state["seq"]) == ("in_use", "alice", 1)
            status = json.loads(by_topic[f"{PREFIX}/status"].payload)
            assert status["status"] == "online" and status["version"] == "9.9"
            assert status["readers"] == [{"reader": "nfc0", "ok": True}] and "low" in status["disk"]
            watcher.client.publish(f"{PREFIX}/cmd/maintenance", b'{"on": true}', qos=1)
            publisher.publish_result({"command": "maintenance", "ok": True})
            got = watcher.wait_until(lambda got: any(m.topic.endswith("cmd_result") for m in got))
            result = next(m for m in got if m.topic == f"{PREFIX}/cmd_result")
            assert json.loads(result.payload) == {"command": "maintenance", "ok": True}
            watcher.wait_until(lambda got: bool(commands), timeout=5)
            assert commands == [("maintenance", b'{"on": true}')]
        finally:
            publisher.stop()
            watcher.close()
        after = Collector(broker.port, f"{PREFIX}/status")
        got = after.wait_until(bool)
        after.close()
        assert json.loads(got[-1].payload)["status"] == "offline" and got[-1].retain


def test_commands_queued_while_away_arrive(tmp_path: Path) -> None:
    data = tmp_path / "data"
    commands: list[tuple[str, bytes]] = []
    with Broker(tmp_path / "broker") as broker:
        store = Store(db.connect(data))
        publisher = make_publisher(broker.port, data, on_command=lambda n, p: commands.append((n, p)))
        publisher.start()
        publisher.wake()
        assert _wait(lambda: (link := store.link()) is not None and link.connected)
        publisher.stop()
        sender = Collector(broker.port, "unused/topic")
        sender.client.publish(f"{PREFIX}/cmd/force_logoff", b"{}", qos=1).wait_for_publish(5)
        sender.close()
        publisher = make_publisher(broker.port, data, on_command=lambda n, p: commands.append((n, p)))
        publisher.start()
        try:
            assert _wait(lambda: bool(commands))
        finally:
            publisher.stop()
    assert commands == [("force_logoff", b"{}")]


def _outbox_of(tmp_path: Path, count: int) -> Path:
    data = tmp_path / "data"
    store = Store(db.connect(data))
    for i in range(count):
        store.commit(in_use(f"s{i}"), [checkout(f"s{i}")], CONTEXT)
    return data


def _deliver(broker_port: int, publisher_port: int, data: Path, count: int) -> list[int]:
    """Run a publisher on `data` until `count` distinct events reached the broker: their seqs."""
    events = Collector(broker_port, f"{PREFIX}/events/#")
    publisher = make_publisher(publisher_port, data)
    publisher.start()
    try:
        got = events.wait_until(lambda got: len({m.payload for m in got}) >= count)
    finally:
        publisher.stop()
        events.close()
    return seqs([m.payload for m in got])


def _wait(predicate: object, timeout: float = 10.0) -> bool:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_in_flight_stays_within_the_brokers_receive_maximum(tmp_path: Path) -> None:
    data = _outbox_of(tmp_path, 300)
    with Broker(tmp_path / "broker", extra="max_inflight_messages 5") as broker:
        tap = MqttTap(broker.port)
        try:
            delivered = _deliver(broker.port, tap.port, data, 300)
        finally:
            tap.close()
    assert sorted(set(delivered)) == list(range(1, 301))
    assert tap.published >= 300
    assert 2 <= tap.max_unacked <= 5, f"{tap.max_unacked} unacknowledged at once; the broker allows 5"


def test_state_is_published_when_every_event_was_acknowledged_before(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = Store(db.connect(data))
    with Broker(tmp_path / "broker") as broker:
        store.commit(in_use("alice"), [checkout("alice")], CONTEXT)
        publisher = make_publisher(broker.port, data)
        publisher.start()
        assert _wait(lambda: store.depth() == 0)
        publisher.stop()
        cleaner = Collector(broker.port, "unused/topic")
        cleaner.client.publish(f"{PREFIX}/state", b"", qos=1, retain=True).wait_for_publish(5)
        cleaner.close()
        watcher = Collector(broker.port, f"{PREFIX}/state")
        publisher = make_publisher(broker.port, data)
        publisher.start()
        try:
            got = watcher.wait_until(lambda got: any(m.payload for m in got), timeout=5)
        finally:
            publisher.stop()
            watcher.close()
    states = [json.loads(m.payload) for m in got if m.payload]
    assert states and (states[-1]["state"], states[-1]["seq"]) == ("in_use", 1)


def test_unreadable_outbox_ends_the_session_and_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _outbox_of(tmp_path, 5)
    real_unsent = Store.unsent
    failures = iter([sqlite3.OperationalError("disk I/O error")])

    def unsent_failing_once(self: Store, after_seq: int = 0, limit: int = 1000) -> list[StoredEvent]:
        for failure in failures:
            raise failure
        return real_unsent(self, after_seq, limit)

    monkeypatch.setattr(Store, "unsent", unsent_failing_once)
    errors: list[str | None] = []
    monkeypatch.setattr(
        Store, "record_link", lambda self, connected, error, readers: errors.append(None if connected else error)
    )
    with Broker(tmp_path / "broker") as broker:
        delivered = _deliver(broker.port, broker.port, data, 5)
    assert sorted(set(delivered)) == [1, 2, 3, 4, 5]
    assert "cannot read the outbox: disk I/O error" in errors


def _voluntary_switches(thread: threading.Thread) -> int:
    status = Path(f"/proc/self/task/{thread.native_id}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("voluntary_ctxt_switches")).split()[1])


def test_idle_publisher_sleeps_and_a_wake_sends_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No polling: idle, the thread sleeps in select(); `wake()` ends that sleep, the idle timeout does not."""
    monkeypatch.setattr(session_module, "IDLE_WAIT_S", 600.0)
    data = tmp_path / "data"
    store = Store(db.connect(data))
    with Broker(tmp_path / "broker") as broker:
        events = Collector(broker.port, f"{PREFIX}/events/#")
        running = make_publisher(broker.port, data)
        running.start()
        try:
            assert _wait(lambda: (link := store.link()) is not None and link.connected)
            time.sleep(0.5)  # past the first status and purge
            thread = next(t for t in threading.enumerate() if t.name == "handoff-publisher")
            before = _voluntary_switches(thread)
            time.sleep(2.0)
            assert _voluntary_switches(thread) - before <= 5, "the idle publisher kept waking up"
            store.commit(in_use("alice"), [checkout("alice")], CONTEXT)
            running.wake()
            got = events.wait_until(bool, timeout=30)
            assert seqs([m.payload for m in got]) == [1], "woken at once, not after the 600 s idle wait"
        finally:
            running.stop()
            events.close()


def test_status_follows_reader_health_and_the_outbox_within_seconds(tmp_path: Path) -> None:
    """Saved and published on change, not only when the link changes or once a minute."""
    data = tmp_path / "data"
    store = Store(db.connect(data))
    health = [{"reader": "nfc0", "ok": False, "detail": "not opened yet"}]
    with Broker(tmp_path / "broker") as broker:
        publisher = make_publisher(broker.port, data, health_provider=lambda: [dict(h) for h in health])
        watcher = Collector(broker.port, f"{PREFIX}/status")
        publisher.start()
        try:
            watcher.wait_for(lambda m: m.json()["readers"][0]["ok"] is False)
            health[0] = {"reader": "nfc0", "ok": True, "detail": "open"}
            watcher.wait_for(lambda m: m.json()["readers"][0]["ok"] is True, timeout=5)
            link = store.link()
            assert link is not None and link.readers == health, "handoff status must see the reader is fine"
            broker.stop()
            store.commit(in_use("alice"), [checkout("alice")], CONTEXT)
            health[0] = {"reader": "nfc0", "ok": False, "detail": "unplugged"}
            deadline = time.monotonic() + 5
            while (link := store.link()) is not None and link.readers != health and time.monotonic() < deadline:
                time.sleep(0.1)
            assert link is not None and link.readers == health and not link.connected, "saved while offline too"
            seen = len(watcher.snapshot())
            broker.start()
            watcher.wait_until(
                lambda got: (
                    [m.json()["outbox_depth"] for m in got[seen:] if m.json()["status"] == "online"][-1:] == [0]
                ),
                timeout=10,
            )
        finally:
            publisher.stop()
            watcher.close()
