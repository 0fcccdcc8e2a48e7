"""A publish the broker refuses is counted per topic, named in the log, and found by doctor.

Real mosquitto whose ACL lets the appliance read its checkpoint topic but not write it, as the
ACL once given in docs/integration.md did: MQTT 5 answers PUBACK 0x87, MQTT 3.1.1 acknowledges
and drops, and only reading the probe back tells.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from handoff import db
from handoff.audit.keys import private_pem
from handoff.config import load_config
from handoff.doctor.result import Status
from handoff.doctor.topics import check_topics
from handoff.store import Store
from tests.kit.appliance import ANA, Running
from tests.kit.broker import Broker
from tests.kit.cli import CliRunner
from tests.kit.collector import Collector
from tests.kit.config import PREFIX, Layout
from tests.kit.wait import wait_for

ACL = f"""topic readwrite {PREFIX}/events/#
topic readwrite {PREFIX}/state
topic readwrite {PREFIX}/status
topic readwrite {PREFIX}/cmd_result
topic readwrite {PREFIX}/cmd/#
topic read {PREFIX}/checkpoint
"""
REFUSED = "Not authorized (0x87)"


@pytest.fixture
def broker(appliance: Layout) -> Iterator[Broker]:
    acl = appliance.root / "acl"
    acl.write_text(ACL)
    with Broker(appliance.root / "broker", extra=f"acl_file {acl}") as running:
        yield running


@pytest.fixture
def audit(tmp_path: Path) -> dict[str, object]:
    key = tmp_path / "audit.key"
    key.write_bytes(private_pem(Ed25519PrivateKey.generate()))
    key.chmod(0o600)
    return {"key_file": str(key), "checkpoint_every": 1}


def test_a_refused_checkpoint_is_counted_named_and_found_by_doctor(
    appliance: Layout, broker: Broker, cli: CliRunner, audit: dict[str, object]
) -> None:
    app = Running(appliance, broker, cli, {"retap_guard_s": 0.5}, audit=audit)
    try:
        app.tap(ANA)
        app.event_types(1)
        store = Store(db.connect(appliance.data_dir))
        refused = wait_for(lambda: store.refused().get("checkpoint"))
        assert refused is not None and refused.reason == REFUSED and refused.count >= 1
        shown = cli("status", "-c", appliance.config)
        assert (
            f"WARNING broker refused publishes on checkpoint: {refused.count} refused, last {REFUSED}" in shown.stdout
        )
        assert "outbox: 0 unsent" in shown.stdout, "the events themselves went through"

        doctor = cli("doctor", "-c", appliance.config)
        line = next(line for line in doctor.stdout.splitlines() if "broker topics" in line)
        assert line.startswith("FAIL") and f"publishing on checkpoint ({REFUSED})" in line, doctor.stdout
        assert "events/" not in line and "state" not in line and doctor.returncode != 0
    finally:
        code, log = app.stop()
        app.events.close()
    assert code == 0
    assert f"broker refused the checkpoint message covering seq 1: {REFUSED}" in log, log
    assert "a status, state or command result message" not in log


def test_on_mqtt_3_1_1_doctor_reads_each_probe_back_and_warns_of_the_one_missing(
    appliance: Layout, broker: Broker, cli: CliRunner
) -> None:
    """3.1.1 acknowledges the refused probe: only reading it back shows it is missing, and that
    cannot tell a refusal from a topic the cart may not read, so it warns and counts nothing."""
    appliance.configure(port=broker.port, mqtt={"protocol": "3.1.1"})
    result = check_topics(load_config(appliance.config), timeout=2.0)
    assert result.status is Status.WARN
    assert result.detail.startswith("no echo on MQTT 3.1.1 for checkpoint:"), result
    assert "events/" not in result.detail and "state" not in result.detail
    assert Store(db.connect(appliance.data_dir)).refused() == {}


def test_doctor_probes_leave_the_retained_state_and_status_alone(
    appliance: Layout, broker: Broker, cli: CliRunner
) -> None:
    """The probes go to the real topics: one retained would overwrite what the cart last said."""
    app = Running(appliance, broker, cli, {"retap_guard_s": 0.5})
    try:
        app.tap(ANA)
        app.event_types(1)
        app.events.wait_for(lambda m: m.topic == f"{PREFIX}/state" and m.json()["state"] == "in_use")
        check_topics(load_config(appliance.config), timeout=2.0)
        later = Collector(broker.port, f"{PREFIX}/#")
        try:
            retained = later.wait_until(lambda got: {f"{PREFIX}/state", f"{PREFIX}/status"} <= {m.topic for m in got})
        finally:
            later.close()
        by_topic = {m.topic: json.loads(m.payload) for m in retained if m.retain}
        assert by_topic[f"{PREFIX}/state"]["state"] == "in_use"
        assert by_topic[f"{PREFIX}/status"]["status"] == "online"
    finally:
        app.stop()
        app.events.close()
