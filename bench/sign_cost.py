"""What signing every event costs a commit: the durable part of a tap, signed and unsigned.

The signatures live only in the commit (three Ed25519 signatures and one more canonical encoding
per event of a handoff), so the commit of a 3-event handoff by a store holding the audit key is
compared with the same commit by a store without one, in interleaved blocks on the same disk in
the same run. bench.sign_latency measures the whole tap, where this cost is a smaller share and
the machine's noise a larger one. Goal: p99 ratio <= 1.05.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.chain_cost import percentile, timed_block
from handoff import db, store
from handoff.audit.checkpoint import CheckpointPolicy


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--commits", type=int, default=100)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="handoff-bench-sign-"))
    # The key signs every event; no checkpoint is ever due, as in the unsigned store.
    never = CheckpointPolicy(Ed25519PrivateKey.generate(), 2**62, float("inf"))
    signing, plain = store.Store(db.connect(work / "on"), checkpoints=never), store.Store(db.connect(work / "off"))
    signed: list[float] = []
    unsigned: list[float] = []
    for block in range(args.blocks + 2):
        on, off = timed_block(signing, args.commits), timed_block(plain, args.commits)
        if block >= 2:  # the first blocks warm the WALs past their first wrap
            signed += on
            unsigned += off
    p99_on, p99_off = percentile(signed, 0.99), percentile(unsigned, 0.99)
    p50_on, p50_off = statistics.median(signed), statistics.median(unsigned)
    print(f"commit of a 3-event handoff, {len(signed)} commits each, synchronous=FULL")
    print(f"  signed:   p50 {p50_on * 1e3:.3f} ms  p99 {p99_on * 1e3:.3f} ms")
    print(f"  unsigned: p50 {p50_off * 1e3:.3f} ms  p99 {p99_off * 1e3:.3f} ms (baseline)")
    print(
        f"  signing cost: {(p50_on - p50_off) * 1e6:.0f} us per handoff at the median; "
        f"ratio p50 {p50_on / p50_off:.3f}, p99 {p99_on / p99_off:.3f} (goal p99 <= 1.05)"
    )


if __name__ == "__main__":
    main()
