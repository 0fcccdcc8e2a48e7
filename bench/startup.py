"""Start-up cost of the commands a cart runs most, and the appliance's memory at rest.

Times, each the best of `--runs` fresh interpreters taken in turns (noise only ever adds, so
the best run is the cost itself; the median is printed too), in wall-clock seconds and in CPU
seconds (user + system, which a busy machine disturbs far less): `handoff --version`, `--help`,
and `handoff status` on a fresh cart and on one whose outbox holds 50,000 unsent events. Memory: the resident
set of `handoff run` at rest (connected to a real mosquitto, nothing happening), without a
reader and with one NFC reader open on nfcpy's UDP frontend.

Baseline, in the same run: `python -c "import paho.mqtt.client, sqlite3"`, its times and its
resident set once imported. Targets (docs/install.md): each time under 0.3 s and at most 3x
the baseline's; `handoff run` under 45 MB.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from handoff import db
from handoff.store import Store
from handoff.testing.broker import Broker
from handoff.testing.child import handoff_env, spawn_handoff, stop_child
from handoff.testing.config import Layout
from handoff.testing.net import free_udp_port
from handoff.testing.outbox import CONTEXT, checkout, in_use

BASELINE = "import paho.mqtt.client, sqlite3"
UNSENT = 50_000
TIME_TARGET_S = 0.3
TIME_TARGET_RATIO = 3.0
RSS_TARGET_MB = 45.0


def fill_outbox(layout: Layout, events: int) -> None:
    store = Store(db.connect(layout.data_dir))
    made = 0
    while made < events:
        batch = [checkout(f"s{made + i}", 1_700_000_000.0 + made + i) for i in range(min(1000, events - made))]
        store.commit(in_use("s0"), batch, CONTEXT)
        made += len(batch)


def run_once(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one fresh interpreter running `argv`."""
    started = time.perf_counter()
    child = subprocess.Popen(argv, env=handoff_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv} failed")
    return elapsed, usage.ru_utime + usage.ru_stime


def vm_rss(status: str) -> float:
    """VmRSS in MB, from the text of /proc/PID/status."""
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS")) / 1024


def baseline_resident() -> float:
    report = "import sys; sys.stdout.write(open('/proc/self/status').read())"
    done = subprocess.run([sys.executable, "-c", f"{BASELINE}; {report}"], capture_output=True, text=True, check=True)
    return vm_rss(done.stdout)


def timings(commands: dict[str, list[str]], runs: int) -> dict[str, list[tuple[float, float]]]:
    """Every command once per round, so that a busy moment of the machine falls on all of them."""
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            results[name].append(run_once(argv))
    return results


def resident_at_rest(layout: Layout, port: int, readers: list[dict[str, str]], settle_s: float) -> float:
    """VmRSS of `handoff run` once connected and `settle_s` later, in MB."""
    config = layout.configure(port=port, readers=readers)
    child = spawn_handoff("run", "-c", config)
    try:
        assert child.stderr is not None
        for line in child.stderr:
            if b"connected to" in line:
                break
        else:
            raise SystemExit("handoff run exited before connecting")
        time.sleep(settle_s)
        return vm_rss(Path(f"/proc/{child.pid}/status").read_text())
    finally:
        stop_child(child, timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--settle", type=float, default=5.0, help="seconds of rest before reading the RSS")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="handoff-startup-"))
    fresh = Layout.create(work / "fresh")
    layout = Layout.create(work / "backlog")
    fill_outbox(layout, UNSENT)
    handoff = [sys.executable, "-m", "handoff"]
    commands = {
        "baseline": [sys.executable, "-c", BASELINE],
        "--version": [*handoff, "--version"],
        "--help": [*handoff, "--help"],
        "status (fresh cart)": [*handoff, "status", "-c", str(fresh.config)],
        f"status ({UNSENT:,} unsent)": [*handoff, "status", "-c", str(layout.config)],
    }
    results = timings(commands, args.runs)
    base_wall = min(wall for wall, _ in results["baseline"])
    base_cpu = min(cpu for _, cpu in results["baseline"])
    print(f"load average {os.getloadavg()[0]:.2f}; {args.runs} runs each, taken in turns")
    print(f"{'command':<26}{'wall best':>10}{'median':>9}{'ratio':>8}{'CPU best':>10}{'ratio':>8}  target")
    for name, samples in results.items():
        wall = min(w for w, _ in samples)
        cpu = min(c for _, c in samples)
        median = statistics.median(w for w, _ in samples)
        ratio = wall / base_wall
        met = wall < TIME_TARGET_S and ratio <= TIME_TARGET_RATIO
        verdict = "" if name == "baseline" else "ok" if met else "MISSED"
        print(f"{name:<26}{wall:>9.3f}s{median:>8.3f}s{ratio:>7.2f}x{cpu:>9.3f}s{cpu / base_cpu:>7.2f}x  {verdict}")
    base_rss = baseline_resident()
    print(f"baseline resident set {base_rss:.1f} MB")
    with Broker(work / "broker") as broker:
        for label, readers in (
            ("no reader", []),
            ("one NFC reader", [{"kind": "nfc", "path": f"udp:127.0.0.1:{free_udp_port()}"}]),
        ):
            rss = resident_at_rest(Layout.create(work / label.replace(" ", "-")), broker.port, readers, args.settle)
            verdict = "ok" if rss < RSS_TARGET_MB else "MISSED"
            print(f"run at rest, {label:<15}{rss:>8.1f} MB RSS, {rss / base_rss:.2f}x the baseline's  {verdict}")


if __name__ == "__main__":
    main()
