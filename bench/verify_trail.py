"""`handoff audit verify` over a long trail: events per second against `sha256sum` of the same
file in the same run (the hashing limit), and its peak RSS, which must stay flat as the trail
grows (goal: under 100 MB at 1,000,000 events).

The trail is written here with the appliance's own envelope, chain and checkpoint functions
(a store commit per event would only measure the disk), one checkpoint every 100 events.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from handoff import compact_json
from handoff.audit.chain import digest, genesis, link
from handoff.audit.checkpoint import make_checkpoint
from handoff.audit.keys import public_pem
from handoff.cloudevents import envelope, uuid7
from handoff.core.events import Event
from handoff.testing.child import handoff_env
from handoff.testing.outbox import CONTEXT, SOURCE


def write_trail(path: Path, events: int, key: Ed25519PrivateKey) -> None:
    chain = genesis(SOURCE)
    now = 1_800_000_000.0
    with path.open("w") as out:
        for seq in range(1, events + 1):
            event = Event(
                "checkout", now + seq, f"h{seq}", staff_id=f"s{seq % 500}", badge_ref="ab" * 32, id=uuid7(now + seq)
            )
            body = envelope(event, seq, CONTEXT)
            chain = body["data"]["chain"] = link(chain, digest(body))
            out.write(compact_json.dumps(body) + "\n")
            if seq % 100 == 0 or seq == events:
                out.write(compact_json.dumps(make_checkpoint(key, SOURCE, CONTEXT.device_id, seq, chain, now)) + "\n")


def timed(command: list[str]) -> tuple[float, int]:
    """Seconds and peak RSS (KiB) of one child process, from its own rusage (wait4)."""
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, env=handoff_env())
    _, status, usage = os.wait4(child.pid, 0)
    took = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{command[0]} exited {child.returncode}")
    return took, usage.ru_maxrss


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    events = parser.parse_args().events
    work = Path(tempfile.mkdtemp(prefix="handoff-bench-verify-"))
    key = Ed25519PrivateKey.generate()
    public = work / "audit.pub"
    public.write_bytes(public_pem(key))
    for count in (events // 4, events):
        trail = work / f"trail-{count}.jsonl"
        write_trail(trail, count, key)
        hashed, _ = timed(["sha256sum", str(trail)])
        verified, rss = timed([sys.executable, "-m", "handoff", "audit", "verify", str(trail), "--key", str(public)])
        size = trail.stat().st_size / 1e6
        print(
            f"{count} events ({size:.0f} MB): verify {count / verified:,.0f} events/s ({verified:.1f} s), "
            f"sha256sum {count / hashed:,.0f} events/s; ratio {hashed / verified:.3f}; peak RSS {rss / 1024:.0f} MB"
        )
        trail.unlink()


if __name__ == "__main__":
    main()
