"""Durable append: `Store.commit` of one event versus a bare sqlite3 insert loop, same settings.

Both write one row per transaction to a WAL database with synchronous=FULL, so the ratio shows
what the state save, the envelope and the seq allocation cost on top of the fsync. An fsync's
cost drifts a lot on a shared or virtual disk, so the two loops take turns in short blocks and
the ratio is the median of the blocks' ratios: a slow spell of the disk lands on both.
"""

from __future__ import annotations

import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from handoff import db
from handoff.store import Store
from tests.outbox_helpers import CONTEXT, checkout, in_use

ROUNDS = 20
BLOCK = 100


def bare_loop(directory: Path, payload: bytes) -> Callable[[], None]:
    conn = sqlite3.connect(directory / "bare.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE outbox (seq INTEGER PRIMARY KEY, payload BLOB NOT NULL)")
    seqs = iter(range(1, ROUNDS * BLOCK + 1))

    def block() -> None:
        for seq in seqs:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO outbox (seq, payload) VALUES (?, ?)", (seq, payload))
            conn.execute("COMMIT")
            if seq % BLOCK == 0:
                return

    return block


def durable_loop(directory: Path) -> tuple[Callable[[], None], bytes]:
    store = Store(db.connect(directory / "store"))
    state, event = in_use("alice"), checkout("alice")
    payload = store.commit(state, [event], CONTEXT)[0].payload

    def block() -> None:
        for _ in range(BLOCK):
            store.commit(state, [event], CONTEXT)

    return block, payload


def timed(block: Callable[[], None]) -> float:
    start = time.perf_counter()
    block()
    return time.perf_counter() - start


def main() -> None:
    ours: list[float] = []
    bare: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        durable, payload = durable_loop(Path(tmp))
        baseline = bare_loop(Path(tmp), payload)
        for round_ in range(ROUNDS):
            if round_ % 2:
                bare.append(timed(baseline))
                ours.append(timed(durable))
            else:
                ours.append(timed(durable))
                bare.append(timed(baseline))
    total = ROUNDS * BLOCK
    ratio = statistics.median(b / o for o, b in zip(ours, bare, strict=True))
    print(f"durable append: {total / sum(ours):.0f} events/s; bare sqlite3 insert loop: {total / sum(bare):.0f} /s")
    print(f"durable append ratio: {ratio:.2f}, median of {ROUNDS} interleaved blocks of {BLOCK} (target >= 0.8)")


if __name__ == "__main__":
    main()
