"""Durable append: `Store.commit` of one event versus a bare sqlite3 insert loop, same settings.

Both write one row per transaction to a WAL database with synchronous=FULL, so the ratio shows
what the state save, the envelope and the seq allocation cost on top of the fsync.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from pathlib import Path

from handoff import db
from handoff.store import Store
from tests.outbox_helpers import CONTEXT, checkout, in_use

COMMITS = 1000


def bare(directory: Path, payload: bytes) -> float:
    conn = sqlite3.connect(directory / "bare.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE outbox (seq INTEGER PRIMARY KEY, payload BLOB NOT NULL)")
    start = time.perf_counter()
    for seq in range(1, COMMITS + 1):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO outbox (seq, payload) VALUES (?, ?)", (seq, payload))
        conn.execute("COMMIT")
    return COMMITS / (time.perf_counter() - start)


def durable(directory: Path) -> tuple[float, bytes]:
    store = Store(db.connect(directory / "store"))
    state, event = in_use("alice"), checkout("alice")
    payload = store.commit(state, [event], CONTEXT)[0].payload
    start = time.perf_counter()
    for _ in range(COMMITS):
        store.commit(state, [event], CONTEXT)
    return COMMITS / (time.perf_counter() - start), payload


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ours, payload = durable(Path(tmp))
        baseline = bare(Path(tmp), payload)
    print(f"durable append: {ours:.0f} events/s; bare sqlite3 insert loop: {baseline:.0f} /s")
    print(f"durable append ratio: {ours / baseline:.2f} (target >= 0.8)")


if __name__ == "__main__":
    main()
