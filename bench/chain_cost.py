"""What the hash chain costs a commit: the durable part of a tap, with and without the chain.

A tap's path is reader -> directory -> core -> commit; the chain lives only in the commit
(canonical JSON, two SHA-256, one more column), so the commit's own latency with the chain is
compared with the same commit storing each event as its compact JSON, as before the chain, in interleaved blocks on the
same disk in the same run. Against a whole tap (bench.tap_latency: p99 about 4 ms here) the
share is smaller still. Goal: under 5 %.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from handoff import compact_json, db, store
from handoff.core.events import Event
from handoff.core.state import Custody, State
from handoff.testing.outbox import CONTEXT

HANDOFF = (
    Event("forced_logoff", 0.0, "h1", staff_id="ana", badge_ref="ab" * 32, session_id="s1", reason="handoff", id="e1"),
    Event("checkin", 0.0, "h1", staff_id="ana", badge_ref="ab" * 32, session_id="s1", reason="handoff", id="e2"),
    Event("checkout", 0.0, "h1", staff_id="bo", badge_ref="cd" * 32, session_id="s2", previous_staff_id="ana", id="e3"),
)
"""The same ids in every commit: the outbox does not look them up, and the bench never sends."""
STATE = State("in_use", 0.0, Custody("bo", "cd" * 32, 0.0, "s2", 0.0, 0.0, 0.0))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def unchained_sealed(event: dict[str, Any], previous: str) -> tuple[bytes, str]:
    """What storing an event cost before the chain: one compact encoding."""
    return compact_json.dumps(event).encode(), previous


def timed_block(target: store.Store, commits: int) -> list[float]:
    took = []
    for _ in range(commits):
        start = time.perf_counter()
        target.commit(STATE, HANDOFF, CONTEXT)
        took.append(time.perf_counter() - start)
    return took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--commits", type=int, default=100)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="handoff-bench-chain-"))
    chained, unchained = store.Store(db.connect(work / "on")), store.Store(db.connect(work / "off"))
    real_sealed = store.sealed
    with_chain: list[float] = []
    without: list[float] = []
    for block in range(args.blocks + 2):
        on = timed_block(chained, args.commits)
        store.sealed = unchained_sealed
        try:
            off = timed_block(unchained, args.commits)
        finally:
            store.sealed = real_sealed
        if block >= 2:  # the first blocks warm the WALs past their first wrap
            with_chain += on
            without += off
    p99_on, p99_off = percentile(with_chain, 0.99), percentile(without, 0.99)
    median_cost = statistics.median(with_chain) - statistics.median(without)
    print(f"commit of a 3-event handoff, {len(with_chain)} commits each, synchronous=FULL")
    print(f"  with the chain:    p50 {statistics.median(with_chain) * 1e3:.3f} ms  p99 {p99_on * 1e3:.3f} ms")
    print(f"  without the chain: p50 {statistics.median(without) * 1e3:.3f} ms  p99 {p99_off * 1e3:.3f} ms")
    print(f"  chain cost: {median_cost * 1e6:.0f} us per handoff at the median; p99 ratio {p99_on / p99_off:.3f}")
    print(f"  share of the commit's p99: {(p99_on - p99_off) / p99_on * 100:.1f} % (goal: under 5 %)")


if __name__ == "__main__":
    main()
