"""A broker that refuses an event (a negative PUBACK) blocks the outbox in order, and says so.

Real mosquitto with an ACL that lets the appliance keep its state and status but not publish
events: MQTT 5 answers each event with PUBACK 0x87 Not authorized.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from handoff import db
from handoff.config import load_config
from handoff.doctor.local import check_outbox
from handoff.doctor.result import Status
from handoff.mqtt.publisher import PublisherSettings
from handoff.store import Store
from tests.asyncapi_schemas import validator
from tests.kit.broker import Broker
from tests.kit.cli import CliRunner
from tests.kit.collector import Collector
from tests.kit.config import PREFIX, Layout
from tests.kit.outbox import CONTEXT, checkout, in_use, mqtt_config, publisher, seqs

ACL = f"""topic readwrite {PREFIX}/state
topic readwrite {PREFIX}/status
topic readwrite {PREFIX}/cmd_result
topic read {PREFIX}/cmd/#
topic {{events}} {PREFIX}/events/#
"""
BLOCKED = "outbox blocked at seq 1: Not authorized (0x87)"


def acl_broker(root: Path, events: str) -> Broker:
    acl = root / "acl"
    acl.write_text(ACL.format(events=events))
    return Broker(root / "broker", extra=f"acl_file {acl}")


def allow_events(broker: Broker, root: Path) -> None:
    (root / "acl").write_text(ACL.format(events="readwrite"))
    broker.reload()


def eventually(check: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.02)
    return check()


def test_refused_event_blocks_in_order_says_so_everywhere_and_drains_once_allowed(
    appliance: Layout, cli: CliRunner
) -> None:
    broker = acl_broker(appliance.root, events="read")
    broker.start()
    appliance.configure(port=broker.port)
    store = Store(db.connect(appliance.data_dir))
    for index in range(3):
        store.commit(in_use(f"s{index}"), [checkout(f"s{index}")], CONTEXT)
    status = Collector(broker.port, f"{PREFIX}/status")
    events = Collector(broker.port, f"{PREFIX}/events/#")
    running = publisher(
        mqtt_config(broker.port), appliance.data_dir, settings=PublisherSettings(backoff_base_s=0.05, backoff_cap_s=0.3)
    )
    running.start()
    try:
        assert eventually(lambda: running.blocked is not None)
        assert running.blocked is not None and running.blocked.describe() == BLOCKED
        shown = cli("status", "-c", appliance.config)
        assert shown.returncode == 0 and BLOCKED in shown.stdout, shown.stdout
        doctor = check_outbox(load_config(appliance.config))
        assert doctor.status is Status.FAIL and BLOCKED in doctor.detail
        said = status.wait_for(lambda m: "outbox_blocked" in m.json())
        assert said.json()["outbox_blocked"] == {"seq": 1, "reason": "Not authorized (0x87)"}
        validator("status").validate(said.json())
        assert store.depth() == 3 and not events.snapshot(), "nothing got past the refused event"

        allow_events(broker, appliance.root)
        got = events.wait_until(lambda got: len({m.payload for m in got}) >= 3)
        assert list(dict.fromkeys(seqs([m.payload for m in got]))) == [1, 2, 3], f"in order? {store.depth()} unsent"
        assert eventually(lambda: running.blocked is None and store.blocked() is None)
        latest = status.wait_until(lambda got: "outbox_blocked" not in got[-1].json())[-1].json()
        assert latest["status"] == "online" and "outbox_blocked" not in latest, "the retained status took it back"
        assert "blocked" not in cli("status", "-c", appliance.config).stdout
        assert check_outbox(load_config(appliance.config)).status is Status.PASS
    finally:
        running.stop()
        status.close()
        events.close()
        broker.stop()
