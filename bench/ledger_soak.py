"""A steady soak of the ledger: `handoff sim fleet` at RATE events/s into `handoff ledger run` on
PostgreSQL for MINUTES (default 30), the fleet signing and enrolled as in production. Goals: the
ledger's RSS at the end within 10 % of its RSS at minute 5 (the baseline, measured in the same
run, once imports, caches and pools have settled), and event -> committed p99 under 250 ms.

Event -> committed is read from the database: an event's `received` (the time its batch was
applied, just before its commit) minus its `time` (stamped by the simulated appliance when it
published it), over the events of the last minute of the run.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from handoff.ledger.database import engine_for
from handoff.provision.render import render_toml
from handoff.testing.broker import Broker
from handoff.testing.child import spawn_handoff
from handoff.testing.ledger import enrolled_fleet
from handoff.testing.postgres import create_database, drop_database

BASELINE_MINUTE = 5
APPLIANCES = 50


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def latency_p99_ms(url: str, since: float) -> tuple[float, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY received - at), count(*) "
            "FROM events WHERE received >= %s",
            (since,),
        ).fetchone()
    assert row is not None
    return float(row[0] or 0.0) * 1000, int(row[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=400.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="handoff-bench-soak-"))
    broker = Broker(work / "broker")
    broker.start()
    url = create_database()
    engine = engine_for(url)
    enrolled_fleet(engine, work / "keys", APPLIANCES)
    engine.dispose()
    config = work / "ledger.toml"
    mqtt = {"url": f"mqtt://127.0.0.1:{broker.port}", "allow_insecure": True}
    config.write_text(render_toml({"ledger": {"database": url}, "mqtt": mqtt}, {}))
    ledger = spawn_handoff("ledger", "run", "-c", config, stderr=(work / "ledger.log").open("ab"))
    fleet = spawn_handoff(
        *("sim", "fleet", "--appliances", str(APPLIANCES), "--rate", str(args.rate)),
        *("--mqtt", f"mqtt://127.0.0.1:{broker.port}", "--keys", work / "keys"),
        stderr=None,
    )
    start = time.monotonic()
    samples: list[tuple[float, int]] = []
    try:
        while (elapsed := time.monotonic() - start) < args.minutes * 60:
            samples.append((elapsed / 60, rss_kib(ledger.pid)))
            print(f"minute {elapsed / 60:5.1f}: RSS {samples[-1][1] / 1024:6.1f} MB", flush=True)
            time.sleep(60.0)
        p99, counted = latency_p99_ms(url, time.time() - 60)
        end_rss = rss_kib(ledger.pid)
    finally:
        for process, stop in ((fleet, signal.SIGINT), (ledger, signal.SIGTERM)):
            process.send_signal(stop)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        drop_database(url)
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    baseline = next((kib for minute, kib in samples if minute >= BASELINE_MINUTE), samples[0][1])
    growth = (end_rss - baseline) / baseline * 100
    print(
        f"RSS of handoff ledger run: {end_rss / 1024:.1f} MB at minute {args.minutes:g}, "
        f"{baseline / 1024:.1f} MB at minute {BASELINE_MINUTE} (baseline): {growth:+.1f} % (goal within 10 %)"
    )
    print(f"event -> committed p99 over the last minute ({counted} events): {p99:.0f} ms (goal < 250 ms)")


if __name__ == "__main__":
    main()
