"""The idle-lock warning on the workstation's screen: a real `handoff run` announces the lock in
its retained state, a real `handoff agent` puts it up through org.freedesktop.Notifications on a
real dbus-daemon (a stand-in notification server plays the desktop, which cannot run here),
through a mosquitto where the agent may read only what docs/agent.md's ACL gives it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from paho.mqtt import publish

from handoff.commands.signing import sign_command
from handoff.provision.render import render_toml
from handoff.timefmt import rfc3339
from tests.kit.appliance import ANA, Running
from tests.kit.broker import Broker
from tests.kit.cli import CliRunner, handoff_env
from tests.kit.config import DEVICE, PREFIX, SITE, Layout
from tests.kit.keys import write_audit_key
from tests.kit.notifications import NotificationBus, NotificationServer

IDLE_S = 6.0
LEAD_S = IDLE_S / 5
"""The appliance warns min(30 s, idle_timeout_s / 5) ahead of the idle lock."""
AGENT_USER, AGENT_PASSWORD = "agent-ws", "s3cret-for-tests"
ACL = f"""topic readwrite #

user {AGENT_USER}
topic read {PREFIX}/events/#
topic read {PREFIX}/state
topic write {PREFIX}/receipts
topic write {PREFIX}/cmd/activity
"""


class Desk:
    """The cart, the broker, the desktop's bus and the agent, started in that order."""

    def __init__(self, root: Path, appliance: Layout, cli: CliRunner) -> None:
        self.root = root
        self.server = NotificationServer()
        self.bus = NotificationBus(root / "dbus", self.server)
        (root / "acl").write_text(ACL)
        passwords = root / "passwd"
        passwords.write_text(f"{AGENT_USER}:{AGENT_PASSWORD}\n")
        passwords.chmod(0o600)
        subprocess.run(["mosquitto_passwd", "-U", str(passwords)], check=True)
        self.broker = Broker(root / "broker", extra=f"acl_file {root / 'acl'}\npassword_file {passwords}")
        self.broker.start()
        made = cli("agent", "keygen", "--out", root / "agent.key")
        assert made.returncode == 0, made.stderr
        (root / "agents.pem").write_text(made.stdout)
        agent = {"keys_file": str(root / "agents.pem"), "confirm_s": 5.0}
        audit_key, appliance_pub = write_audit_key(root)
        policy = {"idle_timeout_s": IDLE_S, "retap_guard_s": 0.5}
        self.cart = Running(appliance, self.broker, cli, policy, audit={"key_file": str(audit_key)}, agent=agent)
        (root / "agent-pw").write_text(AGENT_PASSWORD + "\n")
        tables = {
            "agent": {
                "site": SITE,
                "device_id": DEVICE,
                "agent_id": "ws-test",
                "key_file": str(root / "agent.key"),
                "appliance_key": str(appliance_pub),
                "data_dir": str(root / "agent-data"),
            },
            "mqtt": {
                "url": f"mqtt://127.0.0.1:{self.broker.port}",
                "allow_insecure": True,
                "username": AGENT_USER,
                "password_file": str(root / "agent-pw"),
            },
            "activity": {"kind": "none"},
            "warning": {"bus": self.bus.address},
        }
        (root / "agent.toml").write_text(render_toml(tables, {"actions": [{"kind": "command", "argv": ["true"]}]}))
        self.log = root / "agent.log"
        with self.log.open("a") as log:
            self.agent = subprocess.Popen(
                [sys.executable, "-m", "handoff", "agent", "-c", str(root / "agent.toml")],
                env=handoff_env(),
                stderr=log,
                text=True,
            )
        deadline = time.monotonic() + 10
        while "connected to" not in self.log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "connected to" in self.log.read_text(), self.log.read_text()

    def state_with(self, **fields: object) -> dict[str, object]:
        def matches(message: object) -> bool:
            state = message.json()  # type: ignore[attr-defined]
            return all(state.get(k) == v for k, v in fields.items())

        found: dict[str, object] = self.cart.events.wait_for(
            lambda m: m.topic == f"{PREFIX}/state" and matches(m)
        ).json()
        return found

    def publish_state(self, payload: bytes | str) -> None:
        """As anyone with write access to the state topic could (the test's client is anonymous)."""
        publish.single(f"{PREFIX}/state", payload, qos=1, hostname="127.0.0.1", port=self.broker.port)

    def close(self) -> None:
        self.agent.terminate()
        self.agent.wait(10)
        if self.cart.process is not None:
            self.cart.stop()
        self.cart.events.close()
        self.bus.stop()
        self.broker.stop()


@pytest.fixture
def desk(appliance: Layout, cli: CliRunner, tmp_path: Path) -> Iterator[Desk]:
    built = Desk(tmp_path, appliance, cli)
    yield built
    built.close()


def test_the_desktop_shows_the_warning_before_the_idle_lock_and_takes_it_down_after(desk: Desk) -> None:
    desk.cart.tap(ANA)
    (shown,) = desk.server.wait_for_shown(1)
    warned_at = time.time()
    checkout = desk.cart.events.wait_for(lambda m: m.topic == f"{PREFIX}/events/checkout").json()
    lock_at = datetime.fromisoformat(checkout["time"]).timestamp() + IDLE_S
    assert warned_at >= lock_at - LEAD_S - 0.5, "not before the appliance's warning time"
    announced = desk.cart.events.wait_for(lambda m: m.topic == f"{PREFIX}/state" and bool(m.json()["idle_lock_at"]))
    assert abs(datetime.fromisoformat(announced.json()["idle_lock_at"]).timestamp() - lock_at) < 1.0
    assert shown.summary == "This workstation locks soon" and shown.replaces_id == 0
    assert time.strftime("%H:%M:", time.localtime(lock_at)) in shown.body
    assert shown.hints["urgency"] == ("y", 2) and 0 < shown.expire_ms <= LEAD_S * 1000 + 500
    assert desk.server.wait_for_closed(1) == [shown.given_id]
    assert desk.state_with(state="locked")["idle_lock_at"] is None
    assert time.time() >= lock_at - 0.5, "taken down when the lock came, not before"


def test_activity_puts_the_lock_off_and_the_warning_is_withdrawn(desk: Desk) -> None:
    desk.cart.tap(ANA)
    (shown,) = desk.server.wait_for_shown(1)
    body = {"id": str(uuid.uuid4()), "issued_at": rfc3339(time.time())}
    signed = sign_command(desk.cart.command_key, DEVICE, "activity", body)
    publish.single(f"{PREFIX}/cmd/activity", json.dumps(signed), qos=1, hostname="127.0.0.1", port=desk.broker.port)
    assert desk.server.wait_for_closed(1) == [shown.given_id]
    assert desk.state_with(state="in_use", idle_lock_at=None)["staff_id"] == "ana"
    again = desk.server.wait_for_shown(2)[1]
    assert again.replaces_id == 0, "a new warning for the new lock time"


def test_a_state_message_that_is_not_a_plausible_warning_shows_nothing(desk: Desk) -> None:
    """Anyone who may publish on the state topic can try to put up a warning; these are the
    messages the agent must not believe or choke on, a well-formed one it did not sign included."""
    now = time.time()
    for payload in (
        b"not json",
        b"[1, 2]",
        json.dumps({"state": "in_use", "idle_lock_at": 12345}),
        json.dumps({"state": "in_use", "idle_lock_at": "tomorrow"}),
        json.dumps({"state": "in_use", "idle_lock_at": rfc3339(now + 86400)}),
        json.dumps({"state": "in_use", "idle_lock_at": rfc3339(now - 60)}),
        json.dumps({"state": "in_use", "idle_lock_at": rfc3339(now + 10), "pad": "x" * 5000}),
        json.dumps({"state": "in_use", "idle_lock_at": rfc3339(now + 10)}),
        json.dumps({"state": "in_use", "idle_lock_at": rfc3339(now + 10), "signature": "AAAA"}),
    ):
        desk.publish_state(payload)
    desk.cart.tap(ANA)
    (shown,) = desk.server.wait_for_shown(1)
    assert 0 < shown.expire_ms <= LEAD_S * 1000 + 500, "the first warning is the appliance's own"
    assert desk.agent.poll() is None, "the agent keeps running"
    assert 1 <= desk.log.read_text().count("ignored a state message") <= 2, "one line per run of them, not one each"
