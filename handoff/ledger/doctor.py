"""`handoff ledger doctor`: whether this database and this broker can carry the ledger (and,
with `[oidc]`, whether its provider can sign people in: oidc_doctor.py).

Brokers differ where it matters to the ledger and say nothing about it: RabbitMQ and NATS
accept a `$share/` subscription and deliver nothing on it, RabbitMQ keeps retained messages from
wildcard subscriptions, and an MQTT 5 CONNECT to a 3.1.1-only broker gets no answer. So each
feature is tried for real, on probe topics under `<prefix>/_doctor/` that no ledger reads.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Final

from paho.mqtt.client import Client, MQTTMessage
from sqlalchemy.exc import SQLAlchemyError

from handoff.doctor.result import CheckResult, failed, passed, warned
from handoff.errors import ConfigError
from handoff.ledger import oidc_doctor
from handoff.ledger.config import LedgerConfig
from handoff.ledger.database import revisions
from handoff.ledger.outage import why
from handoff.mqtt import connection

WAIT_S: Final = 5.0


def checks(config: LedgerConfig) -> list[Callable[[], CheckResult]]:
    """The `[oidc]` sign-in's own checks (oidc_doctor.py) follow where it is configured."""
    return [
        lambda: check_database(config.ledger.database),
        lambda: check_broker(config),
        queue_limits,
        lambda: check_trust(config),
        *(oidc_doctor.checks(config.oidc, config.console) if config.oidc else []),
    ]


def check_database(url: str) -> CheckResult:
    where = url.rsplit("@", 1)[-1]
    try:
        current, head = revisions(url)
    except SQLAlchemyError as exc:
        return failed("database", f"{where}: cannot be reached ({why(exc)}); check ledger.database and the server")
    if current == head:
        return passed("database", f"{where}: reachable, migrated to {head}")
    return warned("database", f"{where}: reachable, at {current or 'no schema'}; `ledger run` migrates it to {head}")


def check_broker(config: LedgerConfig) -> CheckResult:
    """Connects with the configured protocol, then tries a retained message on a wildcard and,
    on MQTT 5, a `$share` subscription."""
    mqtt = config.mqtt
    where = f"{mqtt.host}:{mqtt.port}"
    try:
        context = connection.tls_context(mqtt) if mqtt.tls else None
        secret = connection.password(mqtt)
    except ConfigError as exc:
        return failed("broker", str(exc))
    probe = _Probe(connection.probe_client(mqtt, context, secret, f"{mqtt.client_id}-doctor-{uuid.uuid4().hex[:8]}"))
    try:
        problem = probe.connect(mqtt.host, mqtt.port)
        if problem:
            return failed("broker", f"{where} with MQTT {mqtt.protocol}: {problem}")
        base = f"{mqtt.topic_prefix.rstrip('/')}/_doctor/{uuid.uuid4().hex[:12]}"
        retained = probe.delivers(f"{base}/retained", f"{base.rsplit('/', 1)[0]}/+/retained", retain=True)
        shared = "not tried (MQTT 3.1.1 has no shared subscriptions)"
        if mqtt.protocol == "5":
            group = mqtt.shared_group or "handoff-doctor"
            shared = (
                "delivers" if probe.delivers(f"{base}/shared", f"$share/{group}/{base}/shared") else "DELIVERS NOTHING"
            )
    finally:
        probe.close()
    summary = (
        f"{where} speaks MQTT {mqtt.protocol}; retained to a wildcard: {'yes' if retained else 'NO'}; $share: {shared}"
    )
    if not retained:
        return failed("broker", summary + "; the ledger would miss every device's retained state and status")
    if mqtt.shared_group and shared != "delivers":
        return failed("broker", summary + "; leave mqtt.shared_group empty on this broker")
    return passed("broker", summary)


def check_trust(config: LedgerConfig) -> CheckResult:
    """The lab bench's switch is said wherever it is on, so that no one takes its record for evidence."""
    if config.ledger.allow_untrusted:
        return warned(
            "trust",
            "ledger.allow_untrusted is on: every message is believed, signed or not, so nothing this ledger "
            "records is evidence; a lab bench only (docs/security.md)",
        )
    return passed("trust", "only messages signed under a key enrolled for their device are believed")


def queue_limits() -> CheckResult:
    """A broker's configuration cannot be read over MQTT, so this is a reminder, every run."""
    return warned(
        "broker queue",
        "a broker keeps a bounded queue per offline session (mosquitto: max_queued_messages, 1000 by default) "
        "and drops the rest while the ledger is down; raise it (docs/ledger.md, broker requirements)",
    )


class _Probe:
    def __init__(self, client: Client) -> None:
        self._client = client
        self._connected = threading.Event()
        self._refused = ""
        self._got: dict[str, threading.Event] = {}
        client.on_connect = self._on_connect
        client.on_message = self._on_message

    def connect(self, host: str, port: int) -> str:
        try:
            self._client.connect(host, port, keepalive=connection.KEEPALIVE_S)
        except OSError as exc:
            return f"cannot connect ({exc.strerror or exc})"
        self._client.loop_start()
        if not self._connected.wait(WAIT_S):
            return f"no answer to CONNECT within {WAIT_S:.0f} s (does the broker speak this protocol?)"
        return self._refused

    def delivers(self, topic: str, subscription: str, *, retain: bool = False) -> bool:
        """Whether a message on `topic` reaches `subscription`: for retained, published first."""
        got = self._got.setdefault(topic, threading.Event())
        if retain:
            self._client.publish(topic, b"probe", qos=1, retain=True).wait_for_publish(WAIT_S)
        subscribed = threading.Event()
        self._client.on_subscribe = lambda *_: subscribed.set()
        self._client.subscribe(subscription, qos=1)
        subscribed.wait(WAIT_S)
        if not retain:
            self._client.publish(topic, b"probe", qos=1)
        delivered = got.wait(WAIT_S)
        if retain:
            self._client.publish(topic, b"", qos=1, retain=True).wait_for_publish(WAIT_S)
        return delivered

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: Client, userdata: object, flags: object, reason: object, *rest: object) -> None:
        if getattr(reason, "is_failure", False):
            self._refused = f"refused ({reason})"
        self._connected.set()

    def _on_message(self, client: Client, userdata: object, message: MQTTMessage) -> None:
        if message.payload and message.topic in self._got:
            self._got[message.topic].set()
