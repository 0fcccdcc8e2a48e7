"""Ledger ingest into PostgreSQL: EVENTS signed events from `handoff sim fleet` (each with its
signed retained state), the fleet's keys enrolled, queued at the broker while the ledger was
down, then the ledger started: events per second until the last one is committed, and the
ledger's peak RSS, which must not grow with the backlog: a second ledger run on EVENTS/5 queued
events gives the figure to compare. Baselines, in the same run on the same broker and server,
fed the same way: a bare paho client with its own persistent session that only reads and acks
the same messages (goal: the ledger at least 0.5 of it, and over 4,000 events/s); the same
ledger with `allow_untrusted` (no verification: what verifying costs); and a paho subscriber
that INSERTs and commits each message on its own with psycopg (goal: at least 2x it). Peak RSS
under 200 MB for the two processes together (its MQTT session runs in a child). The ledger's own
CPU time, both its processes, is printed beside its wall time: PostgreSQL and mosquitto share the
machine's cores with it. Its time runs from its start, imports included, to the moment the count
of stored events, polled every 50 ms, reaches the backlog.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from paho.mqtt.client import CallbackAPIVersion, Client, MQTTMessage, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from handoff.ledger.database import engine_for
from handoff.provision.render import render_toml
from handoff.testing.broker import Broker
from handoff.testing.child import handoff_env, spawn_handoff
from handoff.testing.ledger import Ledger, enrolled_fleet, spawned_children
from handoff.testing.postgres import create_database, drop_database

UNLIMITED_QUEUE = "max_queued_messages 0\nmax_inflight_messages 0\n"


APPLIANCES = 50
TOPICS = ("events/#", "state", "status", "receipts", "checkpoint")


def fleet(port: int, events: int, keys: Path) -> None:
    command = [sys.executable, "-m", "handoff", "sim", "fleet", "--appliances", str(APPLIANCES), "--rate", "50000"]
    subprocess.run(
        [*command, "--events", str(events), "--mqtt", f"mqtt://127.0.0.1:{port}", "--keys", str(keys)],
        env=handoff_env(),
        check=True,
        stdout=subprocess.DEVNULL,
    )


def count(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0]) if row else 0


@dataclass(frozen=True)
class LedgerRun:
    seconds: float
    cpu_seconds: float
    peak_kib: int
    """Of the ledger's process and its MQTT process, each its own peak (read before they stop)."""
    mqtt_peak_kib: int


def peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for process {pid}")


def ledger_run(work: Path, port: int, events: int, *, verify: bool = True) -> LedgerRun:
    url = create_database()
    config = work / "ledger.toml"
    mqtt = {"url": f"mqtt://127.0.0.1:{port}", "allow_insecure": True}
    config.write_text(render_toml({"ledger": {"database": url, "allow_untrusted": not verify}, "mqtt": mqtt}, {}))
    first = Ledger(config, work / f"first-{url.rsplit('/', 1)[-1]}.log")
    first.start()
    time.sleep(1.0)
    first.kill(signal.SIGTERM)
    engine = engine_for(url)
    enrolled_fleet(engine, work / "keys", APPLIANCES)
    engine.dispose()
    fleet(port, events, work / "keys")
    start = time.perf_counter()
    ledger = spawn_handoff("ledger", "run", "-c", config, stderr=subprocess.DEVNULL)
    while count(url, "events") < events:
        time.sleep(0.05)
    took = time.perf_counter() - start
    [mqtt] = spawned_children(ledger.pid)
    peaks = peak_kib(ledger.pid), peak_kib(mqtt)
    ledger.send_signal(signal.SIGTERM)
    _, _, usage = os.wait4(ledger.pid, 0)
    ledger.returncode = 0
    assert count(url, "untrusted") == 0, "every event of the enrolled fleet believed"
    drop_database(url)
    return LedgerRun(took, usage.ru_utime + usage.ru_stime, *peaks)


def ack_run(work: Path, port: int, events: int) -> float:
    """A paho client that only takes every message the ledger subscribes to and acks it."""
    done = threading.Event()
    seen = [0]

    def on_message(client: Client, _userdata: object, message: MQTTMessage) -> None:
        client.ack(message.mid, message.qos)
        if "/events/" in message.topic:
            seen[0] += 1
            if seen[0] >= events:
                done.set()

    def client() -> Client:
        made = Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id="bench-ack",
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=True,
        )
        made.on_message = on_message
        made.on_connect = lambda c, *_: c.subscribe([(f"handoff/v1/+/+/{topic}", 1) for topic in TOPICS])
        return made

    return _resumed(port, client, lambda: fleet(port, events, work / "keys"), done)


def _resumed(port: int, client: Callable[[], Client], feed: Callable[[], None], done: threading.Event) -> float:
    """Subscribe with a persistent session, leave, let `feed` queue the backlog, come back:
    the seconds until `done`."""
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 3600
    first = client()
    first.connect("127.0.0.1", port, clean_start=True, properties=properties)
    first.loop_start()
    time.sleep(1.0)
    first.loop_stop()
    first.disconnect()
    feed()
    start = time.perf_counter()
    second = client()
    second.connect("127.0.0.1", port, clean_start=False, properties=properties)
    second.loop_start()
    done.wait(3600)
    took = time.perf_counter() - start
    second.loop_stop()
    second.disconnect()
    return took


def bare_run(work: Path, port: int, events: int) -> float:
    url = create_database()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE events (id text PRIMARY KEY, topic text NOT NULL, payload text NOT NULL)")
    sink = psycopg.connect(url)
    done = threading.Event()
    stored = [0]

    def on_message(client: Client, _userdata: object, message: MQTTMessage) -> None:
        if "/events/" not in message.topic:
            return
        sink.execute(
            "INSERT INTO events (id, topic, payload) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            (json.loads(message.payload)["id"], message.topic, message.payload.decode()),
        )
        sink.commit()
        stored[0] += 1
        if stored[0] >= events:
            done.set()

    def client() -> Client:
        made = Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id="bench-bare",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        made.on_message = on_message
        made.on_connect = lambda c, *_: c.subscribe("handoff/v1/+/+/events/#", qos=1)
        return made

    took = _resumed(port, client, lambda: fleet(port, events, work / "keys"), done)
    sink.close()
    drop_database(url)
    return took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    events = parser.parse_args().events
    work = Path(tempfile.mkdtemp(prefix="handoff-bench-ledger-"))
    broker = Broker(work / "broker", extra=UNLIMITED_QUEUE)
    broker.start()
    try:
        small = ledger_run(work, broker.port, events // 5)
        ledger = ledger_run(work, broker.port, events)
        unverified = ledger_run(work, broker.port, events, verify=False)
        ack_s = ack_run(work, broker.port, events)
        bare_s = bare_run(work, broker.port, events)
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"ledger ingest into PostgreSQL of {events} queued signed events, verified: {ledger.seconds:.1f} s, "
        f"{events / ledger.seconds:,.0f} events/s (the ledger's CPU: {ledger.cpu_seconds:.1f} s)"
    )
    print(
        f"baseline, a paho client that only reads and acks the same messages: {ack_s:.1f} s, "
        f"{events / ack_s:,.0f} events/s"
    )
    print(f"ratio ledger / read-and-ack: {ack_s / ledger.seconds:.2f} (goal >= 0.5, and >= 4,000 events/s)")
    print(
        f"the same ledger with allow_untrusted (nothing verified): {unverified.seconds:.1f} s, "
        f"{events / unverified.seconds:,.0f} events/s (its CPU: {unverified.cpu_seconds:.1f} s); "
        f"verified / unverified: {unverified.seconds / ledger.seconds:.2f}"
    )
    print(
        f"baseline, paho + one psycopg INSERT and commit per message: {bare_s:.1f} s, {events / bare_s:,.0f} events/s"
    )
    print(f"ratio ledger / insert loop: {bare_s / ledger.seconds:.2f}x (goal >= 2x)")
    print(
        f"peak RSS of handoff ledger run: {(ledger.peak_kib + ledger.mqtt_peak_kib) / 1024:.0f} MB with {events} "
        f"queued ({ledger.peak_kib / 1024:.0f} MB + {ledger.mqtt_peak_kib / 1024:.0f} MB its MQTT process), "
        f"{(small.peak_kib + small.mqtt_peak_kib) / 1024:.0f} MB with {events // 5} (goal < 200 MB, flat)"
    )


if __name__ == "__main__":
    main()
