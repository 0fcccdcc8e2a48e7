"""The broker ACL that docs/integration.md and docs/agent.md give, loaded into a real mosquitto:
each identity may publish only its own device's topics, checkpoint and receipts included, and
reads what it needs. The ACL text is taken from the documents, so the test holds them to it."""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from paho.mqtt.client import Client, ConnectFlags, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from tests.kit.broker import Broker
from tests.kit.cli import REPO
from tests.kit.config import PREFIX

OTHER = "handoff/v1/st-elsewhere/WOW-9Z-99"
ADMIN = "test-admin"
"""Not in the documents: the test's own identity, to publish what each reader should or should not see."""
PASSWORD = "pw-for-tests"


def documented_acl(document: str, after: str) -> str:
    """The first fenced block after the heading or line `after` in docs/`document`."""
    text = (REPO / "docs" / document).read_text()
    block = re.search(r"```\n(.*?)```", text[text.index(after) :], re.DOTALL)
    assert block is not None, f"no ACL block after {after!r} in {document}"
    return "\n".join(line.strip() for line in block.group(1).splitlines())


class Identity:
    """One MQTT 5 client logged in as `user`, reporting each publish's PUBACK reason code."""

    def __init__(self, port: int, user: str) -> None:
        self._acks: dict[int, int] = {}
        self._subscribed: set[int] = set()
        self._changed = threading.Condition()
        self.received: list[str] = []
        self._connected = threading.Event()
        self.client = Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"acl-{user}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self.client.username_pw_set(user, PASSWORD)
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self._connected.wait(10), f"{user} could not connect"

    def _on_connect(
        self, client: Client, userdata: object, flags: ConnectFlags, code: ReasonCode, props: object
    ) -> None:
        if not code.is_failure:
            self._connected.set()

    def _on_publish(self, client: Client, userdata: object, mid: int, code: ReasonCode, props: Properties) -> None:
        with self._changed:
            self._acks[mid] = code.value
            self._changed.notify_all()

    def _on_subscribe(self, client: Client, userdata: object, mid: int, codes: object, props: object) -> None:
        with self._changed:
            self._subscribed.add(mid)
            self._changed.notify_all()

    def _on_message(self, client: Client, userdata: object, message: MQTTMessage) -> None:
        with self._changed:
            self.received.append(message.topic)
            self._changed.notify_all()

    def may_publish(self, topic: str) -> bool:
        mid = self.client.publish(topic, b"{}", qos=1).mid
        with self._changed:
            assert self._changed.wait_for(lambda: mid in self._acks, 10), f"no PUBACK for {topic}"
            return self._acks[mid] < 0x80

    def subscribe(self, pattern: str) -> None:
        """Returns once the broker has answered (SUBACK): a message published before that may be missed."""
        mid = self.client.subscribe(pattern, qos=1)[1]
        assert mid is not None
        with self._changed:
            assert self._changed.wait_for(lambda: mid in self._subscribed, 10), f"no SUBACK for {pattern}"

    def wait_for(self, topic: str, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: topic in self.received, timeout)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    acl = documented_acl("integration.md", "## Broker ACL (mosquitto)")
    acl += f"\n\nuser {ADMIN}\ntopic readwrite #\n"
    (tmp_path / "acl").write_text(acl)
    users = ["rdr-0042", "agent-ws-3n-07", "handoff-ledger", "ehr-session-manager", ADMIN]
    passwords = tmp_path / "passwd"
    passwords.write_text("".join(f"{user}:{PASSWORD}\n" for user in users))
    passwords.chmod(0o600)
    subprocess.run(["mosquitto_passwd", "-U", str(passwords)], check=True)
    extra = f"acl_file {tmp_path / 'acl'}\npassword_file {passwords}"
    with Broker(tmp_path / "broker", extra=extra, anonymous=False) as running:
        yield running


APPLIANCE_WRITES = ["events/checkout", "events/forced_logoff", "checkpoint", "state", "status", "cmd_result"]
AGENT_WRITES = ["receipts", "cmd/activity"]


def test_the_appliance_publishes_only_its_own_devices_topics(broker: Broker) -> None:
    appliance = Identity(broker.port, "rdr-0042")
    try:
        for suffix in APPLIANCE_WRITES:
            assert appliance.may_publish(f"{PREFIX}/{suffix}"), suffix
        for suffix in [*APPLIANCE_WRITES, "receipts"]:
            assert not appliance.may_publish(f"{OTHER}/{suffix}"), f"another device's {suffix}"
        for suffix in ["receipts", "cmd/force_logoff", "cmd/directory"]:
            assert not appliance.may_publish(f"{PREFIX}/{suffix}"), f"its own {suffix}: not the appliance's to write"
    finally:
        appliance.close()


def test_the_agent_publishes_only_its_receipts_and_activity(broker: Broker) -> None:
    agent = Identity(broker.port, "agent-ws-3n-07")
    try:
        for suffix in AGENT_WRITES:
            assert agent.may_publish(f"{PREFIX}/{suffix}"), suffix
        for suffix in [*APPLIANCE_WRITES, "cmd/force_logoff", "cmd/directory"]:
            assert not agent.may_publish(f"{PREFIX}/{suffix}"), f"the agent wrote {suffix}"
        for suffix in AGENT_WRITES:
            assert not agent.may_publish(f"{OTHER}/{suffix}"), f"another device's {suffix}"
    finally:
        agent.close()


def test_the_ledger_writes_only_force_logoff_commands(broker: Broker) -> None:
    """Its automated response to an anomaly; no other command, and nothing an appliance or agent says."""
    ledger = Identity(broker.port, "handoff-ledger")
    try:
        assert ledger.may_publish(f"{PREFIX}/cmd/force_logoff") and ledger.may_publish(f"{OTHER}/cmd/force_logoff")
        others = [*APPLIANCE_WRITES, *AGENT_WRITES, "cmd/directory", "cmd/maintenance"]
        assert not any(ledger.may_publish(f"{PREFIX}/{suffix}") for suffix in others)
    finally:
        ledger.close()


@pytest.mark.parametrize(
    ("user", "reads", "not_reads"),
    [
        ("rdr-0042", ["receipts", "cmd/force_logoff", "state"], ["events/checkout"]),
        ("agent-ws-3n-07", ["events/forced_logoff", "events/checkin"], ["receipts", "cmd/force_logoff"]),
    ],
)
def test_each_identity_reads_what_it_needs_of_its_own_device(
    broker: Broker, user: str, reads: list[str], not_reads: list[str]
) -> None:
    """The appliance must read its agent's receipts (or no logoff is ever confirmed). What it
    must not read is published first: one publisher's messages reach a subscriber in order."""
    reader, admin = Identity(broker.port, user), Identity(broker.port, ADMIN)
    hidden = [f"{PREFIX}/{suffix}" for suffix in not_reads] + [f"{OTHER}/{suffix}" for suffix in reads]
    try:
        reader.subscribe(f"{PREFIX}/#")
        reader.subscribe(f"{OTHER}/#")
        for topic in hidden:
            assert admin.may_publish(topic)
        for suffix in reads:
            assert admin.may_publish(f"{PREFIX}/{suffix}")
            assert reader.wait_for(f"{PREFIX}/{suffix}", 10), f"{user} did not get {suffix}"
        assert not set(hidden) & set(reader.received)
    finally:
        reader.close()
        admin.close()


def test_the_agent_documents_acl_matches_the_integration_one() -> None:
    agent_doc = documented_acl("agent.md", "5. On the broker")
    integration = documented_acl("integration.md", "## Broker ACL (mosquitto)")
    for line in filter(None, agent_doc.splitlines()):
        assert line in integration.splitlines(), line
