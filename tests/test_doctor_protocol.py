"""`handoff doctor` finds which MQTT version the broker speaks and names the `mqtt.protocol` to set.

Against amqtt (a real broker that speaks only MQTT 3.1.1) and mosquitto (which speaks 5).
"""

from __future__ import annotations

import logging
import time

import pytest

from handoff import db
from handoff.config import load_config
from handoff.doctor.broker import check_protocol
from handoff.doctor.result import Status
from handoff.mqtt.publisher import PublisherSettings
from handoff.store import Store
from tests.kit.amqtt_broker import AmqttBroker
from tests.kit.broker import Broker
from tests.kit.cli import CliRunner
from tests.kit.collector import Collector
from tests.kit.config import PREFIX, Layout
from tests.kit.outbox import CONTEXT, checkout, in_use, mqtt_config, publisher

FAST = PublisherSettings(backoff_base_s=0.05, backoff_cap_s=0.2)


def test_a_3_1_1_only_broker_is_named_with_the_key_to_set(appliance: Layout, cli: CliRunner) -> None:
    with AmqttBroker(appliance.root / "amqtt") as broker:
        appliance.configure(port=broker.port)
        result = check_protocol(load_config(appliance.config).mqtt)
        assert result.status is Status.FAIL
        assert "does not accept MQTT 5" in result.detail and 'set mqtt.protocol = "3.1.1"' in result.detail
        doctor = cli("doctor", "-c", appliance.config)
        line = next(line for line in doctor.stdout.splitlines() if "broker protocol" in line)
        assert line.startswith("FAIL") and 'set mqtt.protocol = "3.1.1"' in line, doctor.stdout

        appliance.configure(port=broker.port, mqtt={"protocol": "3.1.1"})
        assert check_protocol(load_config(appliance.config).mqtt).status is Status.PASS


def test_mosquitto_passes_on_5_and_3_1_1_is_told_to_move_up(appliance: Layout) -> None:
    with Broker(appliance.root / "broker") as broker:
        appliance.configure(port=broker.port)
        assert check_protocol(load_config(appliance.config).mqtt).status is Status.PASS
        appliance.configure(port=broker.port, mqtt={"protocol": "3.1.1"})
        result = check_protocol(load_config(appliance.config).mqtt)
        assert result.status is Status.WARN and 'set mqtt.protocol = "5"' in result.detail


def test_the_publisher_names_the_key_and_works_once_it_is_set(
    appliance: Layout, caplog: pytest.LogCaptureFixture
) -> None:
    with AmqttBroker(appliance.root / "amqtt") as broker:
        store = Store(db.connect(appliance.data_dir))
        store.commit(in_use("alice"), [checkout("alice")], CONTEXT)
        wrong = publisher(mqtt_config(broker.port), appliance.data_dir, settings=FAST)
        with caplog.at_level(logging.WARNING):
            wrong.start()
            deadline = time.monotonic() + 10
            while "mqtt.protocol" not in caplog.text and time.monotonic() < deadline:  # amqtt waits 5 s
                time.sleep(0.05)
            wrong.stop(flush_timeout=0)
        assert 'no CONNACK in time; if the broker does not speak MQTT 5 (mqtt.protocol = "5")' in caplog.text

        events = Collector(broker.port, f"{PREFIX}/events/#", protocol="3.1.1")
        right = publisher(mqtt_config(broker.port, protocol="3.1.1"), appliance.data_dir, settings=FAST)
        right.start()
        try:
            got = events.wait_until(bool)
            assert [m.json()["data"]["staff_id"] for m in got][:1] == ["alice"]
        finally:
            right.stop()
            events.close()
