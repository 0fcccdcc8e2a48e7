"""The running appliance end to end, driven only through its CLI, config and MQTT topics."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt import publish

from handoff.commands.signing import sign_command
from handoff.timefmt import rfc3339
from tests.asyncapi_schemas import validate_event, validator
from tests.kit.appliance import ANA, BO, Running
from tests.kit.broker import Broker
from tests.kit.cli import CliRunner
from tests.kit.config import DEVICE, PREFIX, SITE, Layout


@pytest.fixture
def running(appliance: Layout, cli: CliRunner, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Running]:
    marker = request.node.get_closest_marker("policy")
    broker = Broker(tmp_path / "broker")
    broker.start()
    app = Running(appliance, broker, cli, marker.args[0] if marker else {"retap_guard_s": 0.5})
    yield app
    if app.process is not None:
        app.stop()
    app.events.close()
    broker.stop()


def test_checkout_handoff_and_return_reach_the_broker(running: Running) -> None:
    running.tap(ANA)
    running.tap(BO)
    time.sleep(0.6)
    running.tap(BO)
    assert running.event_types(5) == [
        ("org.handoff.checkout", "ana", None),
        ("org.handoff.forced_logoff", "ana", "handoff"),
        ("org.handoff.checkin", "ana", "handoff"),
        ("org.handoff.checkout", "bo", None),
        ("org.handoff.checkin", "bo", "returned"),
    ]
    events = [m.json() for m in running.events.messages if "/events/" in m.topic]
    assert [e["data"]["seq"] for e in events] == [1, 2, 3, 4, 5]
    assert len({e["data"]["handoff_id"] for e in events[1:4]}) == 1
    first = events[0]
    assert first["specversion"] == "1.0" and first["source"] == f"urn:handoff:{SITE}:rdr-0042"
    assert first["subject"] == DEVICE and first["datacontenttype"] == "application/json"
    assert first["data"]["reader"] == f"nfc:{running.nfc}" and len(first["data"]["badge_ref"]) == 64
    raw = json.dumps(events).upper()
    assert ANA not in raw and BO not in raw
    state = running.events.retained(f"{PREFIX}/state")
    assert state["state"] == "available" and state["seq"] == 5
    for event in events:
        validate_event(event)
    validator("state").validate(state)
    validator("status").validate(running.events.retained(f"{PREFIX}/status"))


@pytest.mark.policy({"idle_timeout_s": 1, "retap_guard_s": 0.5})
def test_idle_timeout_then_reauth(running: Running) -> None:
    running.tap(ANA)
    assert running.event_types(2)[1] == ("org.handoff.forced_logoff", "ana", "idle_timeout")
    running.tap(ANA)
    assert running.event_types(3)[2] == ("org.handoff.reauth", "ana", None)


def test_revocation_from_another_process_ends_the_session_within_2s(running: Running) -> None:
    running.tap(ANA)
    running.event_types(1)
    revoked_at = time.monotonic()
    assert running.cli("badges", "revoke", "ana", "-c", running.appliance.config).returncode == 0
    assert running.event_types(3)[1:] == [
        ("org.handoff.forced_logoff", "ana", "revoked"),
        ("org.handoff.checkin", "ana", "revoked"),
    ]
    assert time.monotonic() - revoked_at < 2.5


def test_sigterm_exits_0_and_restart_forces_logoff(running: Running) -> None:
    running.tap(ANA)
    running.event_types(1)
    stopped_at = time.monotonic()
    code, log = running.stop()
    assert code == 0 and time.monotonic() - stopped_at < 5
    assert "checkout" in log and ANA not in log.upper()
    running.start()
    assert running.event_types(2)[1] == ("org.handoff.forced_logoff", "ana", "restart")


def test_commands_over_mqtt_are_obeyed_or_answered(running: Running) -> None:
    broker_port = running.broker_port
    running.tap(ANA)
    running.event_types(1)
    unsigned = {"id": str(uuid.uuid4()), "issued_at": rfc3339(time.time())}
    publish.single(f"{PREFIX}/cmd/activity", json.dumps(unsigned), qos=1, hostname="127.0.0.1", port=broker_port)
    fields = {"id": str(uuid.uuid4()), "issued_at": rfc3339(time.time()), "on": True}
    command = sign_command(running.command_key, DEVICE, "maintenance", fields)
    publish.single(f"{PREFIX}/cmd/maintenance", json.dumps(command), qos=1, hostname="127.0.0.1", port=broker_port)
    publish.single(f"{PREFIX}/cmd/force_logoff", "not json", qos=1, hostname="127.0.0.1", port=broker_port)
    assert running.event_types(3)[1:] == [
        ("org.handoff.forced_logoff", "ana", "maintenance"),
        ("org.handoff.checkin", "ana", "maintenance"),
    ]
    results = running.events.wait_for_count(lambda m: m.topic == f"{PREFIX}/cmd_result", 3)
    answers = {r.json()["command"]: r.json() for r in results}
    assert answers["activity"]["error"] == "unsigned" and answers["activity"]["id"] == unsigned["id"]
    assert answers["maintenance"]["ok"] and answers["maintenance"]["id"] == command["id"]
    assert answers["force_logoff"]["error"] == "malformed" and not answers["force_logoff"]["ok"]
    for answer in answers.values():
        validator("commandResult").validate(answer)
    running.events.wait_for(lambda m: m.topic == f"{PREFIX}/state" and m.json()["state"] == "maintenance")


def test_during_a_key_rotation_either_key_in_the_file_signs_commands(running: Running) -> None:
    """commands.pem holds the retiring and the new key: both are obeyed, a third key is not."""
    port = running.broker_port

    def send(key: Ed25519PrivateKey, name: str, **fields: object) -> str:
        command = sign_command(
            key, DEVICE, name, {"id": str(uuid.uuid4()), "issued_at": rfc3339(time.time()), **fields}
        )
        publish.single(f"{PREFIX}/cmd/{name}", json.dumps(command), qos=1, hostname="127.0.0.1", port=port)
        return str(command["id"])

    def answer(command_id: str) -> dict[str, object]:
        message = running.events.wait_for(lambda m: m.topic == f"{PREFIX}/cmd_result" and m.json()["id"] == command_id)
        result: dict[str, object] = message.json()
        validator("commandResult").validate(result)
        return result

    assert answer(send(running.retiring_key, "maintenance", on=True))["ok"]
    running.events.wait_for(lambda m: m.topic == f"{PREFIX}/state" and m.json()["state"] == "maintenance")
    assert answer(send(running.command_key, "maintenance", on=False))["ok"]
    running.events.wait_for(lambda m: m.topic == f"{PREFIX}/state" and m.json()["state"] == "available")
    stranger = answer(send(Ed25519PrivateKey.generate(), "maintenance", on=True))
    assert not stranger["ok"] and stranger["error"] == "bad_signature"
    assert answer(send(running.command_key, "force_logoff"))["ok"], "a barrier: the refusal's effects, if any, are in"
    states = [m.json()["state"] for m in running.events.messages if m.topic == f"{PREFIX}/state"]
    assert states[-1] == "available", states


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmHWM for pid {pid}")


def test_a_flood_of_oversized_commands_leaves_memory_flat(running: Running) -> None:
    """The CONNECT's Maximum Packet Size makes the broker drop what paho would read whole."""
    assert running.process is not None
    port = running.broker_port

    def maintenance(on: bool) -> str:
        fields = {"id": str(uuid.uuid4()), "issued_at": rfc3339(time.time()), "on": on}
        command = sign_command(running.command_key, DEVICE, "maintenance", fields)
        publish.single(f"{PREFIX}/cmd/maintenance", json.dumps(command), qos=1, hostname="127.0.0.1", port=port)
        return str(command["id"])

    def answered(command_id: str) -> None:
        running.events.wait_for(lambda m: m.topic == f"{PREFIX}/cmd_result" and m.json()["id"] == command_id)

    answered(maintenance(True))
    before = _peak_rss_kib(running.process.pid)
    huge = b"x" * (16 * 1024 * 1024)
    for _ in range(3):
        publish.single(f"{PREFIX}/cmd/force_logoff", huge, qos=1, hostname="127.0.0.1", port=port)
        publish.single(f"{PREFIX}/cmd/directory", huge + huge, qos=1, hostname="127.0.0.1", port=port)
    answered(maintenance(False))
    grown_kib = _peak_rss_kib(running.process.pid) - before
    assert grown_kib < 8 * 1024, f"peak RSS grew by {grown_kib} KiB under oversized commands"
    refused = [m for m in running.events.messages if m.topic == f"{PREFIX}/cmd_result" and not m.json()["ok"]]
    assert refused == [], "the broker should never have delivered an oversized command"


def test_a_lost_database_never_publishes_a_seq_twice(running: Running, cli: CliRunner) -> None:
    """An emptied database starts counting at 1 again; the broker's retained state remembers more."""
    running.tap(ANA)
    running.tap(BO)
    running.events.wait_for(lambda m: m.topic == f"{PREFIX}/state" and m.json()["seq"] == 4)
    assert running.stop()[0] == 0
    for leftover in running.appliance.data_dir.glob("handoff.db*"):
        leftover.unlink()
    csv = running.appliance.root / "badges.csv"
    assert cli("badges", "import", csv, "-c", running.appliance.config).returncode == 0
    running.start()
    running.tap(ANA)
    events = [m.json() for m in running.events.wait_for_count(lambda m: "/events/" in m.topic, 5)]
    assert [e["data"]["seq"] for e in events] == [1, 2, 3, 4, 5]
    assert len({e["id"] for e in events}) == 5
    running.events.wait_for(lambda m: m.topic == f"{PREFIX}/state" and m.json()["seq"] == 5)
    status = cli("status", "-c", running.appliance.config)
    assert "WARNING seq rewind: the broker had seen seq 4 but this database only knew 0" in status.stdout
    doctor = cli("doctor", "-c", running.appliance.config, timeout=90)
    assert "seq history" in doctor.stdout and "seq rewind" in doctor.stdout


@pytest.fixture
def small_disk(appliance: Layout) -> Iterator[Path]:
    """A real 4 MiB filesystem under the data dir, so a commit meets a genuinely full disk."""
    appliance.data_dir.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(appliance.data_dir)], check=False)
    if mounted.returncode != 0:
        pytest.skip("mounting a tmpfs needs root with CAP_SYS_ADMIN (CI and the dev machines have it)")
    yield appliance.data_dir
    subprocess.run(["umount", "-l", str(appliance.data_dir)], check=True)


def _fill(directory: Path) -> Path:
    filler = directory / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    return filler


def test_a_restart_on_a_full_disk_is_recorded_before_any_tap(
    small_disk: Path, appliance: Layout, cli: CliRunner, tmp_path: Path
) -> None:
    """The restart logoff must land before a tap is judged, or the next handoff gives the wrong reason."""
    with Broker(tmp_path / "broker") as broker:
        app = Running(appliance, broker, cli, {"retap_guard_s": 0.5})
        try:
            app.tap(ANA)
            app.event_types(1)
            app.stop(signal.SIGKILL)
            filler = _fill(small_disk)
            app.start()
            app.tap(BO)
            time.sleep(1.0)
            assert app.event_types(1) == [("org.handoff.checkout", "ana", None)]
            filler.unlink()
            app.events.wait_for_count(lambda m: "/events/" in m.topic, 2)
            app.tap(BO)
            assert app.event_types(4) == [
                ("org.handoff.checkout", "ana", None),
                ("org.handoff.forced_logoff", "ana", "restart"),
                ("org.handoff.checkin", "ana", "handoff"),
                ("org.handoff.checkout", "bo", None),
            ]
            _, log = app.stop()
            assert "no tap is accepted until it is" in log and "not accepted: the restart is not recorded yet" in log
        finally:
            if app.process is not None:
                app.stop(signal.SIGKILL)
            app.events.close()


SPAWN_AUDIT = """
import sys

SPAWNS = {"subprocess.Popen", "os.posix_spawn", "os.fork", "os.forkpty", "os.exec", "os.spawn", "os.system"}


def hook(event, args):
    if event in SPAWNS:
        sys.stderr.write(f"spawned: {event} {args[0]!r}\\n")


sys.addaudithook(hook)
from handoff.cli.main import main

sys.exit(main(sys.argv[1:]))
"""


class AuditedRunning(Running):
    """`handoff run` under a Python audit hook that writes every process it spawns to stderr."""

    program = (sys.executable, "-c", SPAWN_AUDIT)


def test_no_process_is_spawned_on_the_tap_path(appliance: Layout, cli: CliRunner, tmp_path: Path) -> None:
    """clock_synced() runs on every commit, before "accepted": it once ran `ldconfig -p` each time."""
    with Broker(tmp_path / "broker") as broker:
        app = AuditedRunning(appliance, broker, cli, {"retap_guard_s": 0.0})
        try:
            for _ in range(3):
                app.tap(ANA)
            app.event_types(3)
            _, log = app.stop()
        finally:
            if app.process is not None:
                app.stop(signal.SIGKILL)
            app.events.close()
    after_first_tap = log[log.index("INFO checkout") :]
    assert after_first_tap.count("INFO check") == 3 and "spawned:" not in after_first_tap, after_first_tap


def test_a_storm_of_stop_signals_stops_once_and_cleanly(running: Running) -> None:
    """The handler only puts a Stop on the loop's SimpleQueue: no logging, no lock, no traceback."""
    process = running.process
    assert process is not None
    for index in range(30):
        process.send_signal(signal.SIGINT if index % 2 else signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    _, log = running.stop()
    assert log.count("stopping") == 1 and "Traceback" not in log, log
