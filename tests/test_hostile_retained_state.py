"""A retained state left on the device's state topic by anyone allowed to write it must not stop
the publisher: it is read back on every connect, so one that raised would stop every restart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from paho.mqtt import publish

from handoff import db
from handoff.store import Store
from tests.kit.broker import Broker
from tests.kit.collector import Collector
from tests.kit.config import PREFIX
from tests.kit.outbox import CONTEXT, SOURCE, checkout, in_use, mqtt_config, publisher, seqs

HOSTILE = {
    "nested past the parser's recursion limit": b'{"seq": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "a seq past SQLite's integers": json.dumps({"source": SOURCE, "seq": 2**70}).encode(),
    "a seq of zero": json.dumps({"source": SOURCE, "seq": 0}).encode(),
}


@pytest.mark.parametrize("payload", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_retained_state_is_ignored_and_events_flow(tmp_path: Path, payload: bytes) -> None:
    data = tmp_path / "data"
    store = Store(db.connect(data))
    store.commit(in_use("ana"), [checkout("ana")], CONTEXT)
    with Broker(tmp_path / "broker") as broker:
        publish.single(f"{PREFIX}/state", payload, qos=1, retain=True, hostname="127.0.0.1", port=broker.port)
        events = Collector(broker.port, f"{PREFIX}/events/#")
        running = publisher(mqtt_config(broker.port), data)
        running.start()
        try:
            got = events.wait_until(bool)
            assert running.fault is None
        finally:
            running.stop()
            events.close()
    assert seqs([m.payload for m in got]) == [1]
