"""Idle cost: CPU of `handoff run` with one NFC and one PC/SC reader open and no taps.

Measured from /proc over a window, as a share of one core; the baseline in the same run is a
`python -c "import time; time.sleep(...)"` process over the same window, so interpreter and
machine noise show up on both sides. Target: under 2 % of one core.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from handoff.testing import pcscd
from handoff.testing.broker import Broker
from handoff.testing.child import spawn_handoff
from handoff.testing.config import Layout
from handoff.testing.net import free_udp_port

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def shares_of_core(pids: list[int], window: float) -> list[float]:
    """CPU of each process over the same window, as a share of one core."""
    before, started = [cpu_seconds(pid) for pid in pids], time.monotonic()
    time.sleep(window)
    elapsed = time.monotonic() - started
    return [(cpu_seconds(pid) - used) / elapsed for pid, used in zip(pids, before, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30.0)
    window = parser.parse_args().seconds
    pcscd.ensure_running()
    work = Path(tempfile.mkdtemp(prefix="handoff-idle-"))
    broker = Broker(work / "broker")
    broker.start()
    readers = [{"kind": "nfc", "path": f"udp:127.0.0.1:{free_udp_port()}"}, {"kind": "pcsc", "name": "Virtual PCD"}]
    config = Layout.create(work).configure(port=broker.port, readers=readers)
    appliance = spawn_handoff("run", "-c", config, stderr=subprocess.DEVNULL)
    baseline = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({window + 10})"])
    try:
        time.sleep(3.0)
        ours, idle_python = shares_of_core([appliance.pid, baseline.pid], window)
    finally:
        appliance.send_signal(signal.SIGTERM)
        appliance.wait(10)
        baseline.kill()
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"idle CPU of handoff run (1 NFC + 1 PC/SC reader, {window:g} s): {ours * 100:.2f} % of one core "
        f"(target < 2 %); a sleeping python: {idle_python * 100:.2f} %"
    )


if __name__ == "__main__":
    main()
