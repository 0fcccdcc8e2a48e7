"""Ledger ingest into PostgreSQL: EVENTS events from `handoff sim fleet`, queued at the broker
while the ledger was down, then the ledger started: events per second until the last one is
committed, and the ledger's peak RSS, which must not grow with the backlog: a second ledger
run on EVENTS/5 queued events gives the figure to compare. The baseline, in the same run on the
same broker and server: a bare paho subscriber with its own persistent session that INSERTs
and commits each message on its own with psycopg, fed the same way. Goals: at least 2x the bare
loop, over 5,000 events/s, and peak RSS under 200 MB. The ledger's own CPU time is printed
beside its wall time: PostgreSQL and mosquitto share the machine's cores with it.
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
from dataclasses import dataclass
from pathlib import Path

import psycopg
from paho.mqtt.client import CallbackAPIVersion, Client, MQTTMessage, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from handoff.provision.render import render_toml
from handoff.testing.broker import Broker
from handoff.testing.child import handoff_env, spawn_handoff
from handoff.testing.postgres import create_database, drop_database

UNLIMITED_QUEUE = "max_queued_messages 0\nmax_inflight_messages 0\n"


def fleet(port: int, events: int) -> None:
    command = [sys.executable, "-m", "handoff", "sim", "fleet", "--appliances", "50", "--rate", "50000"]
    subprocess.run(
        [*command, "--events", str(events), "--mqtt", f"mqtt://127.0.0.1:{port}"],
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


def ledger_run(work: Path, port: int, events: int) -> LedgerRun:
    url = create_database()
    config = work / "ledger.toml"
    mqtt = {"url": f"mqtt://127.0.0.1:{port}", "allow_insecure": True}
    config.write_text(render_toml({"ledger": {"database": url}, "mqtt": mqtt}, {}))
    first = spawn_handoff("ledger", "run", "-c", config, stderr=subprocess.DEVNULL)
    time.sleep(3.0)
    first.send_signal(signal.SIGTERM)
    first.wait(30)
    fleet(port, events)
    start = time.perf_counter()
    ledger = spawn_handoff("ledger", "run", "-c", config, stderr=subprocess.DEVNULL)
    while count(url, "events") < events:
        time.sleep(0.2)
    took = time.perf_counter() - start
    ledger.send_signal(signal.SIGTERM)
    _, _, usage = os.wait4(ledger.pid, 0)
    ledger.returncode = 0
    drop_database(url)
    return LedgerRun(took, usage.ru_utime + usage.ru_stime, int(usage.ru_maxrss))


def bare_run(port: int, events: int) -> float:
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

    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 3600
    first = client()
    first.connect("127.0.0.1", port, clean_start=True, properties=properties)
    first.loop_start()
    time.sleep(1.0)
    first.loop_stop()
    first.disconnect()
    fleet(port, events)
    start = time.perf_counter()
    second = client()
    second.connect("127.0.0.1", port, clean_start=False, properties=properties)
    second.loop_start()
    done.wait(3600)
    took = time.perf_counter() - start
    second.loop_stop()
    second.disconnect()
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
        bare_s = bare_run(broker.port, events)
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"ledger ingest into PostgreSQL of {events} queued events: {ledger.seconds:.1f} s, "
        f"{events / ledger.seconds:,.0f} events/s (the ledger's CPU: {ledger.cpu_seconds:.1f} s)"
    )
    print(
        f"baseline, paho + one psycopg INSERT and commit per message: {bare_s:.1f} s, {events / bare_s:,.0f} events/s"
    )
    print(f"ratio ledger / bare: {bare_s / ledger.seconds:.2f}x (goal >= 2x, and > 5,000 events/s)")
    print(
        f"peak RSS of handoff ledger run: {ledger.peak_kib / 1024:.0f} MB with {events} queued, "
        f"{small.peak_kib / 1024:.0f} MB with {events // 5} (goal < 200 MB, flat)"
    )


if __name__ == "__main__":
    main()
