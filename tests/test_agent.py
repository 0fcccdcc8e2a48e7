"""`handoff agent` and `handoff run` as real processes, through a real mosquitto where the agent
has its own identity and may publish only its device's receipts and activity (docs/agent.md).

logind cannot run here; its part is played by a stand-in on a real dbus-daemon
(tests/kit/logind.py), which the agent reaches as the system bus.
"""

from __future__ import annotations

import json
import signal
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt import publish
from paho.mqtt.client import CallbackAPIVersion, Client, MQTTProtocolVersion

from handoff.agent.actions import run_command
from handoff.agent.config import CommandAction
from handoff.audit.keys import load_signing_key
from handoff.audit.signature import event_signature, event_signature_ok, public_key_b64
from handoff.provision.render import render_toml
from handoff.testing.child import spawn_handoff, stop_child
from tests.kit.appliance import ANA, BO, Running, kinds
from tests.kit.broker import Broker
from tests.kit.cli import CliRunner
from tests.kit.collector import Message
from tests.kit.config import DEVICE, PREFIX, READER, SITE, Layout
from tests.kit.keys import write_audit_key
from tests.kit.logind import FakeLogind, FakeSession, LogindBus

CONFIRM_S = 3.0
AGENT_USER, AGENT_PASSWORD = "agent-ws", "s3cret-for-tests"
ACL = f"""topic readwrite #

user {AGENT_USER}
topic read {PREFIX}/events/#
topic write {PREFIX}/receipts
topic write {PREFIX}/cmd/activity
"""
"""Anonymous clients (the appliance, the test's own subscriber) may do anything; the agent,
which logs in, may read its device's events and write only its receipts and activity."""

APPEND = [sys.executable, "-c", "import sys; open(sys.argv[1], 'a').write(' '.join(sys.argv[2:]) + '\\n')"]


class World:
    def __init__(self, root: Path, appliance: Layout, cli: CliRunner, policy: dict[str, Any], require: bool) -> None:
        self.root, self.cli = root, cli
        self.logind = FakeLogind({"c1": FakeSession("c1")})
        self.bus = LogindBus(root / "dbus", self.logind)
        (root / "acl").write_text(ACL)
        passwords = root / "passwd"
        passwords.write_text(f"{AGENT_USER}:{AGENT_PASSWORD}\n")
        passwords.chmod(0o600)
        subprocess.run(["mosquitto_passwd", "-U", str(passwords)], check=True)
        self.broker = Broker(root / "broker", extra=f"acl_file {root / 'acl'}\npassword_file {passwords}")
        self.broker.start()
        self.key = root / "agent.key"
        made = cli("agent", "keygen", "--out", self.key)
        assert made.returncode == 0, made.stderr
        (root / "agents.pem").write_text(made.stdout)
        agent = {"keys_file": str(root / "agents.pem"), "confirm_s": CONFIRM_S, "require_confirmed": require}
        self.audit_key, self.appliance_pub = write_audit_key(root)
        audit = {"key_file": str(self.audit_key)}
        self.cart = Running(appliance, self.broker, cli, policy, audit=audit, agent=agent)
        self.acted = root / "acted.txt"
        self.agent: subprocess.Popen[bytes] | None = None
        self.agent_log = root / "agent.log"

    def configure_agent(self, actions: list[dict[str, Any]], activity: dict[str, Any] | None = None) -> Path:
        (self.root / "agent-pw").write_text(AGENT_PASSWORD + "\n")
        tables = {
            "agent": {
                "site": SITE,
                "device_id": DEVICE,
                "agent_id": "ws-test",
                "key_file": str(self.key),
                "appliance_key": str(self.appliance_pub),
                "data_dir": str(self.root / "agent-data"),
            },
            "mqtt": {
                "url": f"mqtt://127.0.0.1:{self.broker.port}",
                "allow_insecure": True,
                "username": AGENT_USER,
                "password_file": str(self.root / "agent-pw"),
            },
            "activity": activity or {"kind": "none"},
        }
        path = self.root / "agent.toml"
        path.write_text(render_toml(tables, {"actions": actions}))
        return path

    def start_agent(self) -> None:
        env = {"DBUS_SYSTEM_BUS_ADDRESS": self.bus.address}
        with self.agent_log.open("ab") as log:
            self.agent = spawn_handoff("agent", "-c", self.root / "agent.toml", env=env, stderr=log)
        deadline = time.monotonic() + 60  # a loaded machine takes seconds to start an interpreter
        while "connected to" not in self.agent_log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "connected to" in self.agent_log.read_text(), self.agent_log.read_text()

    def stop_agent(self, sig: signal.Signals = signal.SIGTERM) -> int:
        assert self.agent is not None
        code = stop_child(self.agent, sig)
        self.agent = None
        self.agent_log.write_text(self.agent_log.read_text().replace("connected to", "was connected to"))
        return code

    def publish(self, topic: str, body: Any) -> None:
        """As anyone who can publish on the broker (a forger), not as the cart."""
        payload = json.dumps(body)
        publish.single(topic, payload, qos=1, hostname="127.0.0.1", port=self.broker.port)

    def wait_log(self, text: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.agent_log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert text in self.agent_log.read_text(), self.agent_log.read_text()

    def events(self, count: int) -> list[dict[str, Any]]:
        return [m.json() for m in self.cart.events.wait_for_count(lambda m: "/events/" in m.topic, count)]

    def receipts(self, count: int) -> list[dict[str, Any]]:
        return [m.json() for m in self.cart.events.wait_for_count(lambda m: m.topic.endswith("/receipts"), count)]

    def close(self) -> None:
        if self.agent is not None:
            self.stop_agent()
        if self.cart.process is not None:
            self.cart.stop()
        self.cart.events.close()
        self.bus.stop()
        self.broker.stop()


@pytest.fixture
def world(appliance: Layout, cli: CliRunner, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[World]:
    marker = request.node.get_closest_marker("policy")
    policy = marker.args[0] if marker else {"retap_guard_s": 0.5}
    built = World(tmp_path, appliance, cli, policy, request.node.get_closest_marker("require_confirmed") is not None)
    yield built
    built.close()


def test_keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites_it(
    tmp_path: Path, cli: CliRunner
) -> None:
    out = tmp_path / "agent.key"
    made = cli("agent", "keygen", "--out", out)
    assert made.returncode == 0 and made.stdout.startswith("-----BEGIN PUBLIC KEY-----")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and b"PRIVATE KEY" in out.read_bytes()
    again = cli("agent", "keygen", "--out", out)
    assert again.returncode == 2 and "exists" in again.stderr and "Traceback" not in again.stderr


def test_a_handoff_with_the_agent_up_is_confirmed_and_the_action_ran_with_its_arguments(world: World) -> None:
    world.configure_agent([{"kind": "command", "argv": [*APPEND, str(world.acted), "{staff_id}", "{reason}"]}])
    world.start_agent()
    world.cart.tap(ANA)
    world.cart.tap(BO)
    events = world.events(5)
    assert kinds(events) == [
        ("checkout", "ana", None),
        ("forced_logoff", "ana", "handoff"),
        ("checkin", "ana", "handoff"),
        ("checkout", "bo", None),
        ("logoff_confirmed", "ana", None),
    ]
    assert events[4]["data"]["for"] == events[1]["id"]
    assert world.acted.read_text() == "ana handoff\n"
    receipt = world.receipts(1)[0]
    assert receipt["data"]["result"] == "done" and receipt["source"] == f"urn:handoff:{SITE}:agent:ws-test"


def test_a_failing_or_hanging_action_gives_a_failed_receipt(world: World) -> None:
    world.configure_agent(
        [
            {"kind": "command", "argv": [sys.executable, "-c", "raise SystemExit(3)"]},
            {"kind": "command", "argv": [sys.executable, "-c", "import time; time.sleep(30)"], "timeout_s": 0.5},
        ]
    )
    world.start_agent()
    world.cart.tap(ANA)
    time.sleep(0.6)
    world.cart.tap(ANA)
    assert kinds(world.events(3))[2] == ("logoff_unconfirmed", "ana", "failed")
    actions = world.receipts(1)[0]["data"]["actions"]
    assert [(a["outcome"], a["detail"]) for a in actions] == [
        ("failed", "exit status 3"),
        ("failed", "no exit within 0.5 s (killed)"),
    ]


def test_with_the_agent_down_the_logoff_is_unconfirmed_then_confirmed_late(world: World) -> None:
    world.configure_agent([{"kind": "command", "argv": [*APPEND, str(world.acted), "{event_id}"]}])
    world.start_agent()
    world.stop_agent()
    world.cart.tap(ANA)
    time.sleep(0.6)
    world.cart.tap(ANA)
    checkin = world.events(2)[1]
    assert kinds(world.events(3))[2] == ("logoff_unconfirmed", "ana", "timeout")
    world.start_agent()
    late = world.events(4)[3]
    assert kinds([late]) == [("logoff_confirmed", "ana", None)] and late["data"]["for"] == checkin["id"]
    assert world.acted.read_text() == f"{checkin['id']}\n"


def test_killed_after_acting_and_before_publishing_the_receipt_still_comes_and_nothing_runs_twice(
    world: World,
) -> None:
    """The action itself kills the agent (kill -9 of its parent) once it has done its work."""
    script = f"open({str(world.acted)!r}, 'a').write('acted\\n'); import os, signal; os.kill(os.getppid(), 9)"
    world.configure_agent([{"kind": "command", "argv": [sys.executable, "-c", script]}])
    world.start_agent()
    world.cart.tap(ANA)
    time.sleep(0.6)
    world.cart.tap(ANA)
    assert world.agent is not None and world.agent.wait(10) == -signal.SIGKILL
    world.agent = None
    world.start_agent()
    receipt = world.receipts(1)[0]
    assert receipt["data"]["for"] == world.events(2)[1]["id"]
    assert receipt["data"]["result"] == "failed" and "not run again" in receipt["data"]["actions"][0]["detail"]
    time.sleep(0.5)
    assert world.acted.read_text() == "acted\n"


def test_an_event_delivered_again_gets_the_same_receipt_not_a_second_logoff(world: World) -> None:
    world.configure_agent([{"kind": "command", "argv": [*APPEND, str(world.acted), "{event_id}"]}])
    world.start_agent()
    world.cart.tap(ANA)
    time.sleep(0.6)
    world.cart.tap(ANA)
    checkin = world.events(2)[1]
    first = world.receipts(1)[0]
    publish.single(f"{PREFIX}/events/checkin", json.dumps(checkin), qos=1, hostname="127.0.0.1", port=world.broker.port)
    second = world.receipts(2)[1]
    assert second == first
    assert world.acted.read_text() == f"{checkin['id']}\n"


def test_the_agent_may_publish_nothing_but_its_receipts_and_activity(world: World) -> None:
    client = Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id="agent-probe", protocol=MQTTProtocolVersion.MQTTv5
    )
    client.username_pw_set(AGENT_USER, AGENT_PASSWORD)
    client.connect("127.0.0.1", world.broker.port)
    client.loop_start()
    try:
        refused = client.publish(f"{PREFIX}/events/checkout", b"{}", qos=1)
        refused.wait_for_publish(5)
        allowed = client.publish(f"{PREFIX}/receipts", b"{}", qos=1)
        allowed.wait_for_publish(5)
    finally:
        client.loop_stop()
        client.disconnect()
    time.sleep(0.3)
    topics = [m.topic for m in world.cart.events.snapshot()]
    assert f"{PREFIX}/receipts" in topics and f"{PREFIX}/events/checkout" not in topics


def test_logind_sessions_are_terminated_and_read_back(world: World) -> None:
    world.logind.sessions["c2"] = FakeSession("c2", kind="tty")
    world.configure_agent([{"kind": "logind", "mode": "terminate"}])
    world.start_agent()
    world.cart.tap(ANA)
    world.cart.tap(BO)
    assert kinds(world.events(5))[4] == ("logoff_confirmed", "ana", None)
    assert world.logind.calls == [("TerminateSession", "c1")] and set(world.logind.sessions) == {"c2"}


def test_a_lock_that_logind_never_shows_is_a_failed_logoff(world: World) -> None:
    world.logind.sessions["c1"].stubborn = True
    world.configure_agent([{"kind": "logind", "mode": "lock"}])
    world.start_agent()
    world.cart.tap(ANA)
    time.sleep(0.6)
    world.cart.tap(ANA)
    assert kinds(world.events(3))[2] == ("logoff_unconfirmed", "ana", "failed")
    assert "c1" in world.receipts(1)[0]["data"]["actions"][0]["detail"]


@pytest.mark.require_confirmed
def test_require_confirmed_hands_over_once_the_agent_has_logged_the_holder_off(world: World) -> None:
    world.configure_agent([{"kind": "command", "argv": [*APPEND, str(world.acted), "{staff_id}"]}])
    world.start_agent()
    world.cart.tap(ANA)
    world.cart.tap(BO)
    assert kinds(world.events(5)) == [
        ("checkout", "ana", None),
        ("forced_logoff", "ana", "handoff"),
        ("logoff_confirmed", "ana", None),
        ("checkin", "ana", "handoff"),
        ("checkout", "bo", None),
    ]


@pytest.mark.policy({"retap_guard_s": 0.5, "idle_timeout_s": 3})
def test_activity_from_the_agent_postpones_the_idle_lock(world: World) -> None:
    world.configure_agent([{"kind": "logind", "mode": "lock"}], activity={"kind": "logind", "min_interval_s": 1})
    world.start_agent()
    world.cart.tap(ANA)
    world.events(1)
    time.sleep(4.5)
    assert sum("/events/" in m.topic for m in world.cart.events.snapshot()) == 1, "locked while the user was active"
    world.logind.idle = True
    assert kinds(world.events(2))[1] == ("forced_logoff", "ana", "idle_timeout")


@pytest.mark.parametrize(
    ("actions", "extra", "named"),
    [
        ([], "", "actions"),
        ([{"kind": "command", "argv": []}], "", "actions[0].argv"),
        ([{"kind": "shell", "argv": ["x"]}], "", "actions[0].kind"),
        ([{"kind": "logind", "mode": "reboot"}], "", "actions[0].mode"),
        ([{"kind": "command", "argv": ["true"], "timeout_s": 0}], "", "actions[0].timeout_s"),
        ([{"kind": "logind"}], '[activity]\nkind = "logind"\nevery = 3\n', "activity.every"),
        ([{"kind": "logind"}], "", "agent.appliance_key"),
    ],
)
def test_a_bad_agent_config_is_one_line_naming_the_key(
    tmp_path: Path, cli: CliRunner, actions: list[dict[str, Any]], extra: str, named: str
) -> None:
    identity = {
        "site": SITE,
        "device_id": DEVICE,
        "key_file": str(tmp_path / "k"),
        "appliance_key": str(tmp_path / "a.pub"),
        "data_dir": str(tmp_path / "d"),
    }
    if named == "agent.appliance_key":
        del identity["appliance_key"]
    config = tmp_path / "agent.toml"
    config.write_text(render_toml({"agent": identity}, {"actions": actions}) + extra)
    result = cli("agent", "-c", config)
    assert result.returncode == 2 and named in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def a_forced_logoff(key: Ed25519PrivateKey | None, staff_id: str = "ana", device: str = DEVICE) -> dict[str, Any]:
    """A forced_logoff as the appliance makes it, signed by `key` (None: unsigned)."""
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": f"urn:handoff:{SITE}:{READER}",
        "type": "org.handoff.forced_logoff",
        "subject": device,
        "time": "2026-12-03T12:00:00Z",
        "datacontenttype": "application/json",
        "data": {
            "device_id": device,
            "reader_id": READER,
            "seq": 99,
            "staff_id": staff_id,
            "session_id": "s-1",
            "reason": "remote",
            "chain": "00" * 32,
        },
    }
    if key is not None:
        event["data"]["signature"] = event_signature(key, event)
    return event


def test_forged_events_run_nothing_and_the_real_handoff_runs_once(world: World) -> None:
    """Whoever can publish on the broker: unsigned, wrongly signed, self-signed, another cart's
    and altered events are ignored; an event the cart did sign with a staff id that a program
    would read as an option or a placeholder gets a failed receipt and nothing run."""
    world.configure_agent([{"kind": "command", "argv": [*APPEND, str(world.acted), "{staff_id}", "{session_id}"]}])
    world.start_agent()
    cart_key = load_signing_key(world.audit_key)
    forger, other_cart = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    self_signed = a_forced_logoff(None, "mallory")
    self_signed["data"]["public_key"] = public_key_b64(forger)
    self_signed["data"]["signature"] = event_signature(forger, self_signed)
    altered = a_forced_logoff(cart_key)
    altered["data"]["staff_id"] = "mallory"
    elsewhere = a_forced_logoff(cart_key)
    elsewhere["data"]["device_id"] = "WOW-9Z-99"
    elsewhere["data"]["signature"] = event_signature(cart_key, elsewhere)
    forgeries: list[Any] = [
        a_forced_logoff(None),
        a_forced_logoff(forger),
        self_signed,
        a_forced_logoff(other_cart, device="WOW-9Z-99"),
        a_forced_logoff(cart_key, device="WOW-9Z-99"),
        elsewhere,
        altered,
        "not an event",
    ]
    for forged in forgeries:
        world.publish(f"{PREFIX}/events/forced_logoff", forged)
    world.wait_log("ignored 8 event(s) not signed by this cart's appliance key")
    assert "bad_signature 5, malformed 1, wrong_device 2" in world.agent_log.read_text()
    hostile = ["--help", "-rf", "{session_id}"]
    for staff_id in hostile:
        world.publish(f"{PREFIX}/events/forced_logoff", a_forced_logoff(cart_key, staff_id))
    refused = world.receipts(3)
    assert [r["data"]["staff_id"] for r in refused] == hostile
    assert all(r["data"]["result"] == "failed" and "not run" in r["data"]["actions"][0]["detail"] for r in refused)
    world.cart.tap(ANA)
    world.cart.tap(BO)
    public = [cart_key.public_key()]

    def made_by_the_cart(message: Message) -> bool:
        body = message.json() if "/events/" in message.topic else None
        if not isinstance(body, dict) or not event_signature_ok(body, public):
            return False
        return body["data"]["device_id"] == body["subject"] == DEVICE and body["data"]["staff_id"] in ("ana", "bo")

    real = [m.json() for m in world.cart.events.wait_for_count(made_by_the_cart, 5)]
    confirmed = next(e for e in real if e["type"] == "org.handoff.logoff_confirmed")
    ended = next(e for e in real if e["type"] == "org.handoff.forced_logoff" and e["data"]["staff_id"] == "ana")
    assert confirmed["data"]["for"] == ended["id"]
    assert world.acted.read_text() == f"ana {ended['data']['session_id']}\n"


def test_placeholders_are_substituted_once(tmp_path: Path) -> None:
    """A value that looks like a placeholder reaches the program as it is, not expanded again."""
    acted = tmp_path / "acted.txt"
    action = CommandAction(argv=(*APPEND, str(acted), "{reason}", "{staff_id}", "x{session_id}y"))
    event = {"id": "e-1", "data": {"staff_id": "ana", "session_id": "{staff_id}", "reason": "{event_id}"}}
    assert run_command(action, event).done
    assert acted.read_text() == "{event_id} ana x{staff_id}y\n"
