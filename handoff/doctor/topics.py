"""May this cart publish on every topic it uses? A broker ACL missing one refuses it quietly.

MQTT 5 says so in the PUBACK: each refusal fails the check and is counted for `handoff status`,
as the running appliance counts the refusals it meets. MQTT 3.1.1 acknowledges a refused
publish as if delivered, so there each probe is read back; one that does not come back is
refused or on a topic this identity may write but not read (docs/integration.md gives it write
only on events and checkpoint), which doctor cannot tell apart: a warning, not counted.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, get_args

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from handoff import compact_json, db
from handoff.config import Config
from handoff.core.events import EventType
from handoff.doctor.broker import doctor_client
from handoff.doctor.result import CheckResult, failed, passed, skipped, warned
from handoff.errors import ConfigError, HandoffError
from handoff.mqtt.connection import tls_context
from handoff.mqtt.topics import Topics
from handoff.outbox import StoreError
from handoff.store import Store

NAME: Final = "broker topics"
PROBE: Final = compact_json.dumps({"probe": "handoff doctor"}).encode()
"""Not retained, so the retained state, status and checkpoint stay as the appliance left them;
it has none of the fields a consumer needs, so consumers count it as malformed and go on."""
NO_ECHO: Final = "no echo on MQTT 3.1.1"
LOOP_S: Final = 0.05


def published_topics() -> list[str]:
    """Every topic the appliance publishes on, as suffixes under `P/S/D/`."""
    return [*(f"events/{kind}" for kind in get_args(EventType)), "state", "status", "checkpoint", "cmd_result"]


def read_topics(config: Config) -> list[str]:
    """What it subscribes to: commands, and the agent's receipts when an agent is configured."""
    return ["cmd/+", *(["receipts"] if config.agent is not None else [])]


@dataclass
class _Probe:
    """What came back from the broker. paho's loop runs on this thread (no loop_start), so each
    message id is noted before its answer can be read, and nothing here needs a lock."""

    v5: bool
    connected: bool = False
    connack: str | None = None
    pending: dict[int, str] = field(default_factory=dict)
    """Publish or subscribe message id to what it was for: `publishing on <suffix>` or `reading <suffix>`."""
    refused: dict[str, str] = field(default_factory=dict)
    echoed: set[str] = field(default_factory=set)
    unconfirmed: list[str] = field(default_factory=list)
    """On MQTT 3.1.1: topic suffixes whose probe did not come back."""


def check_topics(config: Config, timeout: float = 5.0) -> CheckResult:
    mqtt_config = config.mqtt
    if mqtt_config.tls and (mqtt_config.cert_file is None or not mqtt_config.cert_file.exists()):
        return skipped(NAME, "no client certificate yet, so nothing can be published")
    appliance = config.appliance
    topics = Topics(mqtt_config.topic_prefix, appliance.site, appliance.device_id)
    try:
        context = tls_context(mqtt_config) if mqtt_config.tls else None
        probe = _probe(config, topics, context, timeout)
    except (ConfigError, OSError, ssl.SSLError) as exc:
        return skipped(NAME, f"MQTT CONNECT failed ({exc}); see the broker check")
    if not probe.connected:
        return skipped(NAME, f"the broker did not accept a CONNECT ({probe.connack or 'no CONNACK in time'})")
    _count(config, probe.refused)
    if probe.refused:
        named = ", ".join(f"{what} ({reason})" for what, reason in probe.refused.items())
        return failed(
            NAME,
            f"the broker refuses {named}: give this cart access to {topics.base}/<topic> in the "
            "broker's ACL (docs/integration.md)",
        )
    if probe.unconfirmed:
        return warned(
            NAME,
            f"{NO_ECHO} for {', '.join(probe.unconfirmed)}: MQTT 3.1.1 does not say when a broker refuses, "
            "and these probes did not come back (refused, or not readable by this cart); "
            'set mqtt.protocol = "5" if the broker speaks it, or check its ACL for these topics',
        )
    how = "" if probe.v5 else ", each read back (MQTT 3.1.1 does not say when it refuses)"
    return passed(NAME, f"the broker accepts publishes on all {len(published_topics())} topics{how}")


def _probe(config: Config, topics: Topics, context: ssl.SSLContext | None, timeout: float) -> _Probe:
    mqtt_config = config.mqtt
    probe = _Probe(v5=mqtt_config.protocol == "5")
    client = doctor_client(mqtt_config, context, mqtt_config.protocol)
    client.on_connect = lambda _c, _u, _f, reason, _p: _on_connect(probe, reason)
    client.on_publish = lambda _c, _u, mid, reason, _p: _settle(probe, mid, reason)
    client.on_subscribe = lambda _c, _u, mid, reasons, _p: _settle(probe, mid, max(reasons, key=_code))
    client.on_message = lambda _c, _u, message: _echo(probe, topics, message)
    client.connect(mqtt_config.host, mqtt_config.port, keepalive=10)
    try:
        if not _loop(client, lambda: probe.connected or probe.connack is not None, timeout) or probe.connack:
            return probe
        suffixes = published_topics()
        for suffix in read_topics(config):
            _, mid = client.subscribe(topics.under(suffix), qos=1)
            probe.pending[mid or 0] = f"reading {suffix}"
        if not probe.v5:
            client.subscribe([(topics.under(suffix), 1) for suffix in suffixes])
        _loop(client, lambda: not probe.pending, timeout)
        for suffix in suffixes:
            probe.pending[client.publish(topics.under(suffix), PROBE, qos=1).mid] = f"publishing on {suffix}"
        _loop(client, lambda: not probe.pending and (probe.v5 or set(suffixes) <= probe.echoed), timeout)
        probe.refused.update({what: "no answer in time" for what in probe.pending.values()})
        if not probe.v5:
            probe.unconfirmed = [suffix for suffix in suffixes if suffix not in probe.echoed]
        return probe
    finally:
        client.disconnect()


def _loop(client: mqtt.Client, finished: Callable[[], bool], timeout: float) -> bool:
    """Run paho's network loop here until `finished` or `timeout`; whether it finished."""
    deadline = time.monotonic() + timeout
    while not finished():
        left = deadline - time.monotonic()
        if left <= 0 or client.loop(min(left, LOOP_S)) != mqtt.MQTT_ERR_SUCCESS:
            return finished()
    return True


def _code(reason: ReasonCode) -> int:
    return int(reason.value)


def _on_connect(probe: _Probe, reason: ReasonCode) -> None:
    probe.connack = str(reason) if reason.is_failure else None
    probe.connected = not reason.is_failure


def _settle(probe: _Probe, mid: int, reason: ReasonCode) -> None:
    what = probe.pending.pop(mid, None)
    if what is not None and reason.is_failure:
        probe.refused[what] = f"{reason} (0x{reason.value:02x})"


def _echo(probe: _Probe, topics: Topics, message: mqtt.MQTTMessage) -> None:
    head = topics.under("")
    if message.topic.startswith(head) and bytes(message.payload) == PROBE:
        probe.echoed.add(message.topic[len(head) :])


def _count(config: Config, refused: dict[str, str]) -> None:
    """Counted where the running appliance counts the refusals it meets, so status shows them."""
    published = {what.removeprefix("publishing on "): reason for what, reason in refused.items()}
    published = {topic: reason for topic, reason in published.items() if topic in published_topics()}
    if not published:
        return
    try:
        conn = db.connect_checked(config.appliance.data_dir)
    except HandoffError:
        return
    try:
        store = Store(conn)
        for topic, reason in published.items():
            store.record_refused(topic, f"{reason}, found by handoff doctor")
    except StoreError:
        return
    finally:
        conn.close()
