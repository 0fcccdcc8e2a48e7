"""Logoff confirmation: a handoff's forced_logoff committed -> its logoff_confirmed committed.

The whole path runs: the appliance (built in this process, as bench.tap_latency builds it)
publishes the forced_logoff, a real `handoff agent` process receives it, runs a `command`
action of `true`, signs and publishes its receipt, the appliance checks it and commits
logoff_confirmed. Both instants are the outbox's own commit times. The baseline, measured on
the same broker in the same run, is the bare MQTT round trip of a message and its answer
(one paho client publishes at QoS 1, another answers at QoS 1, the first receives it).
Goal: p99 under 100 ms.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

from paho.mqtt.client import CallbackAPIVersion, Client, MQTTMessage, MQTTProtocolVersion

from bench.chain_cost import percentile
from handoff import db
from handoff.badge_ref import load_secret
from handoff.config import load_config
from handoff.directory import Directory, read_csv
from handoff.provision.render import render_toml
from handoff.runtime import wiring
from handoff.runtime.appliance import Stop
from handoff.sim.nfc_badge import NfcBadge
from handoff.testing.broker import Broker
from handoff.testing.child import spawn_handoff
from handoff.testing.cli import run_handoff
from handoff.testing.config import DEVICE, SITE, Layout
from handoff.testing.keys import write_audit_key
from handoff.testing.net import free_udp_port

BADGES = ("08A1B2C3", "08D4E5F6")


def round_trips(port: int, count: int) -> list[float]:
    """Milliseconds from publishing a message to receiving its answer, one at a time."""
    answered = threading.Event()

    def client(name: str) -> Client:
        made = Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=name, protocol=MQTTProtocolVersion.MQTTv5
        )
        made.connect("127.0.0.1", port)
        made.loop_start()
        return made

    def answer(made: Client, _userdata: object, message: MQTTMessage) -> None:
        made.publish("bench/answer", message.payload, qos=1)

    asker, responder = client("bench-asker"), client("bench-responder")
    responder.on_message = answer
    asker.on_message = lambda *_: answered.set()
    responder.subscribe("bench/question", qos=1)
    asker.subscribe("bench/answer", qos=1)
    time.sleep(0.5)
    took = []
    for _ in range(count):
        answered.clear()
        start = time.perf_counter()
        asker.publish("bench/question", b'{"q":1}', qos=1)
        if answered.wait(5):
            took.append((time.perf_counter() - start) * 1000)
        time.sleep(0.05)
    for made in (asker, responder):
        made.loop_stop()
        made.disconnect()
    return took


def confirmations(data_dir: Path) -> list[float]:
    """Milliseconds from each forced_logoff's commit to its logoff_confirmed's commit."""
    committed = {}
    took = []
    conn = db.connect(data_dir)
    for event_id, topic, payload, created in conn.execute(
        "SELECT id, topic, payload, created FROM outbox ORDER BY seq"
    ):
        committed[event_id] = created
        if topic == "events/logoff_confirmed":
            took.append((created - committed[json.loads(payload)["data"]["for"]]) * 1000)
    return took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--handoffs", type=int, default=200)
    handoffs = parser.parse_args().handoffs
    work = Path(tempfile.mkdtemp(prefix="handoff-bench-agent-"))
    broker = Broker(work / "broker")
    broker.start()
    key, keys = work / "agent.key", work / "agents.pem"
    keys.write_text(run_handoff("agent", "keygen", "--out", str(key)).stdout)
    port = free_udp_port()
    layout = Layout.create(work)
    audit_key, appliance_pub = write_audit_key(work)
    config_path = layout.configure(
        port=broker.port,
        readers=[{"kind": "nfc", "path": f"udp:127.0.0.1:{port}"}],
        policy={"retap_guard_s": 0},
        agent={"keys_file": str(keys), "confirm_s": 10},
        audit={"key_file": str(audit_key)},
    )
    csv = work / "badges.csv"
    csv.write_text("uid,staff_id,name,role\n" + "".join(f"{uid},s{i},Staff {i},RN\n" for i, uid in enumerate(BADGES)))
    config = load_config(config_path)
    Directory(db.connect(config.appliance.data_dir)).replace(
        read_csv(csv, load_secret(config.appliance.badge_secret_file))
    )
    agent_config = work / "agent.toml"
    identity = {
        "site": SITE,
        "device_id": DEVICE,
        "agent_id": "bench",
        "key_file": str(key),
        "appliance_key": str(appliance_pub),
        "data_dir": str(work / "agent"),
    }
    mqtt = {"url": f"mqtt://127.0.0.1:{broker.port}", "allow_insecure": True}
    agent_config.write_text(
        render_toml(
            {"agent": identity, "mqtt": mqtt, "activity": {"kind": "none"}},
            {"actions": [{"kind": "command", "argv": ["true"]}]},
        )
    )
    agent = spawn_handoff("agent", "-c", agent_config, stderr=subprocess.DEVNULL)
    parts = wiring.build(config, new_id=lambda: str(uuid.uuid4()))
    runner = threading.Thread(target=parts.run, daemon=True)
    runner.start()
    time.sleep(2.0)
    conn = db.connect(config.appliance.data_dir)

    def confirmed() -> int:
        return int(conn.execute("SELECT count(*) FROM outbox WHERE topic = 'events/logoff_confirmed'").fetchone()[0])

    for index in range(handoffs + 1):
        before = confirmed()
        NfcBadge(bytes.fromhex(BADGES[index % 2]), "127.0.0.1", port).present(0.05, 5.0)
        deadline = time.monotonic() + 5
        while index and confirmed() == before and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(0.3)
    parts.appliance.submit(Stop())
    runner.join(10)
    agent.send_signal(signal.SIGTERM)
    agent.wait(10)
    took = confirmations(config.appliance.data_dir)
    baseline = round_trips(broker.port, handoffs)
    broker.stop()
    shutil.rmtree(work, ignore_errors=True)
    print(
        f"forced_logoff committed -> logoff_confirmed committed, {len(took)} handoffs "
        f"(agent action: true): p50 {statistics.median(took):.1f} ms, p99 {percentile(took, 0.99):.1f} ms "
        "(goal p99 < 100 ms)"
    )
    print(
        f"baseline, bare MQTT round trip (QoS 1 question and answer), {len(baseline)} trips: "
        f"p50 {statistics.median(baseline):.1f} ms, p99 {percentile(baseline, 0.99):.1f} ms"
    )
    print(f"ratio p50 confirmation / round trip: {statistics.median(took) / statistics.median(baseline):.1f}")


if __name__ == "__main__":
    main()
