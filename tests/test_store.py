"""The outbox against a real SQLite file: one commit per change, seq never reused."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handoff import db
from handoff.cloudevents import EventContext, uuid7
from handoff.core.events import Event
from handoff.core.state import Custody, State, initial_state
from handoff.outbox import StoreError
from handoff.store import Store

CONTEXT = EventContext(site="st-elsewhere", device_id="WOW-3N-07", reader_id="rdr-0042", clock_synced=True)


def checkout(t: float) -> Event:
    return Event(
        type="checkout", time=t, handoff_id="h1", staff_id="s1", badge_ref="ab" * 32, session_id="x", id=uuid7(t)
    )


def in_use(t: float) -> State:
    custody = Custody("s1", "ab" * 32, t, "x", t, t, t)
    return State(mode="in_use", since=t, custody=custody)


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_commit_saves_state_and_numbers_events(tmp_path: Path) -> None:
    store = Store(db.connect(tmp_path))
    assert store.load_state() is None
    first = store.commit(in_use(10.0), [checkout(10.0), checkout(11.0)], CONTEXT)
    second = store.commit(initial_state(12.0), [checkout(12.0)], CONTEXT)
    assert [e.seq for e in first + second] == [1, 2, 3]
    assert first[0].topic == "events/checkout"
    body = json.loads(first[1].payload)
    assert body["data"]["seq"] == 2 and body["id"] == first[1].id
    reopened = Store(db.connect(tmp_path))
    assert reopened.load_state() == initial_state(12.0)
    retained = reopened.retained_state()
    assert retained is not None and (retained["state"], retained["staff_id"], retained["seq"]) == ("available", None, 3)
    assert [e.seq for e in reopened.unsent()] == [1, 2, 3]


def test_seq_is_never_reused_after_purge(tmp_path: Path) -> None:
    clock = Clock()
    store = Store(db.connect(tmp_path), clock)
    events = store.commit(in_use(1.0), [checkout(1.0), checkout(2.0)], CONTEXT)
    store.mark_acked([e.seq for e in events])
    clock.now += 31 * 86400
    assert store.purge(30) == 2
    assert store.commit(in_use(3.0), [checkout(3.0)], CONTEXT)[0].seq == 3


def test_purge_keeps_unsent_and_recent(tmp_path: Path) -> None:
    clock = Clock()
    store = Store(db.connect(tmp_path), clock)
    events = store.commit(in_use(1.0), [checkout(1.0), checkout(2.0), checkout(3.0)], CONTEXT)
    store.mark_acked([events[0].seq])
    clock.now += 5 * 86400
    store.mark_acked([events[1].seq])
    clock.now += 26 * 86400
    assert store.purge(30) == 1
    assert [e.seq for e, _ in store.all_events()] == [2, 3]
    assert store.depth() == 1
    assert store.oldest_unsent_created() == 1_700_000_000.0


def test_read_only_database_raises_store_error_and_keeps_commits(tmp_path: Path) -> None:
    store = Store(db.connect(tmp_path))
    store.commit(in_use(1.0), [checkout(1.0)], CONTEXT)
    read_only = sqlite3.connect(f"file:{tmp_path / db.DB_NAME}?mode=ro", uri=True, isolation_level=None)
    with pytest.raises(StoreError, match="cannot commit events"):
        Store(read_only).commit(initial_state(2.0), [checkout(2.0)], CONTEXT)
    assert [e.seq for e in store.unsent()] == [1]


def test_full_disk_raises_store_error(tmp_path: Path) -> None:
    conn = db.connect(tmp_path)
    store = Store(conn)
    store.commit(in_use(1.0), [checkout(1.0)], CONTEXT)
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    big = Event(type="checkout", time=2.0, handoff_id="h" * 100_000, id=uuid7(2.0))
    with pytest.raises(StoreError, match="full"):
        store.commit(initial_state(2.0), [big], CONTEXT)
    assert [e.seq for e in store.unsent()] == [1]
    assert store.load_state() == in_use(1.0)


def test_link_keeps_since_while_unchanged(tmp_path: Path) -> None:
    clock = Clock()
    store = Store(db.connect(tmp_path), clock)
    store.record_link(False, "refused", [])
    clock.now += 5
    store.record_link(False, "timeout", [{"reader": "nfc0", "ok": True}])
    link = store.link()
    assert link is not None and link.since == 1_700_000_000.0 and link.last_error == "timeout"
    clock.now += 5
    store.record_link(True, None, [])
    assert store.link() == type(link)(True, 1_700_000_010.0, None, [])


def test_out_of_order_acknowledgements_hold_the_watermark(tmp_path: Path) -> None:
    store = Store(db.connect(tmp_path))
    store.commit(in_use(1.0), [checkout(float(t)) for t in range(1, 7)], CONTEXT)
    store.mark_acked([2, 3, 5])
    assert [e.seq for e in store.unsent()] == [1, 4, 6]
    assert store.depth() == 3
    assert [e.seq for e in store.unsent(after_seq=1)] == [4, 6]
    store.mark_acked([1, 4])
    assert [e.seq for e in store.unsent()] == [6]
    store.mark_acked([6])
    assert store.unsent() == [] and store.depth() == 0 and store.oldest_unsent_created() is None
    store.commit(in_use(8.0), [checkout(8.0)], CONTEXT)
    assert [e.seq for e in store.unsent()] == [7]


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("commit"), st.integers(1, 5)),
            st.tuples(st.just("ack"), st.sets(st.integers(1, 40), max_size=8)),
            st.tuples(st.just("purge"), st.just(0)),
            st.tuples(st.just("rewind"), st.integers(0, 60)),
        ),
        max_size=25,
    )
)
def test_the_counted_depth_is_the_number_of_unsent_rows(tmp_path_factory: pytest.TempPathFactory, steps: list) -> None:
    """`depth` counts without reading the rows; whatever commits, out-of-order acknowledgements,
    purges and seq rewinds did, it says what reading them would."""
    clock = Clock()
    store = Store(db.connect(tmp_path_factory.mktemp("depth")), clock)
    for action, value in steps:
        clock.now += 10
        if action == "commit":
            store.commit(in_use(clock.now), [checkout(clock.now) for _ in range(value)], CONTEXT)
        elif action == "ack":
            store.mark_acked(sorted(value))
        elif action == "purge":
            store.purge(0)
        else:
            store.rebase_above(value, None, None)
        assert store.depth() == len(store.unsent(limit=10_000)), (action, value)


def test_an_outbox_from_before_the_watermark_is_migrated_with_its_events(tmp_path: Path) -> None:
    path = tmp_path / db.DB_NAME
    old = sqlite3.connect(path, isolation_level=None)
    for number, script in enumerate(db.MIGRATIONS[:3], start=1):
        for statement in filter(str.strip, script.split(";")):
            old.execute(statement)
        old.execute(f"PRAGMA user_version = {number}")
    old.execute("INSERT INTO appliance_state (id, body, last_seq) VALUES (1, '{}', 4)")
    old.executemany(
        "INSERT INTO outbox (seq, id, topic, payload, created, acked) VALUES (?, ?, 'events/checkout', x'7b7d', ?, ?)",
        [(2, "id-2", 2.0, 9.0), (3, "id-3", 3.0, None), (4, "id-4", 4.0, None)],
    )
    old.close()
    store = Store(db.connect(tmp_path))
    assert [(e.seq, e.id) for e in store.unsent()] == [(3, "id-3"), (4, "id-4")]
    assert [(e.seq, acked) for e, acked in store.all_events()] == [(2, 9.0), (3, None), (4, None)]
    store.mark_acked([3, 4])
    assert store.depth() == 0


def test_a_broker_ahead_of_the_database_moves_unsent_events_above_its_seq(tmp_path: Path) -> None:
    store = Store(db.connect(tmp_path / "data"))
    made = store.commit(in_use(1.0), [checkout(1.0), checkout(2.0)], CONTEXT)
    assert store.rebase_above(2, made[1].id, None) is None
    assert store.rebase_above(1, None, None) is None
    rewind = store.rebase_above(40, "another-id", None)
    assert rewind is not None and (rewind.broker_seq, rewind.local_seq, rewind.renumbered) == (40, 2, 2)
    moved = store.unsent()
    assert [e.seq for e in moved] == [41, 42]
    assert [e.id for e in moved] == [e.id for e in made]
    assert [json.loads(e.payload)["data"]["seq"] for e in moved] == [41, 42]
    later = store.commit(in_use(3.0), [checkout(3.0)], CONTEXT)
    assert later[0].seq == 43
    assert store.rewind() == rewind
    retained = store.retained_state()
    assert retained is not None and (retained["seq"], retained["event_id"]) == (43, later[0].id)
    store.mark_acked([41, 42, 43])
    assert store.rebase_above(43, later[0].id, None) is None


def test_a_seq_held_here_under_another_id_means_the_database_lost_events(tmp_path: Path) -> None:
    """The database was emptied, then made more events offline than the broker had seen."""
    store = Store(db.connect(tmp_path / "data"))
    made = store.commit(in_use(1.0), [checkout(float(t)) for t in range(5)], CONTEXT)
    rewind = store.rebase_above(3, "id-the-broker-saw", None)
    assert rewind is not None and (rewind.local_seq, rewind.renumbered) == (5, 5)
    assert [(e.seq, e.id) for e in store.unsent()] == [(4 + i, e.id) for i, e in enumerate(made)]


def test_an_empty_database_behind_the_broker_numbers_its_first_event_above_it(tmp_path: Path) -> None:
    store = Store(db.connect(tmp_path / "data"))
    rewind = store.rebase_above(7, None, None)
    assert rewind is not None and (rewind.local_seq, rewind.renumbered) == (0, 0)
    assert store.load_state() == initial_state(rewind.at)
    assert store.commit(in_use(1.0), [checkout(1.0)], CONTEXT)[0].seq == 8
