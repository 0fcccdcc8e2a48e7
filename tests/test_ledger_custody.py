"""The custody intervals and sessions kept at ingest (handoff/ledger/custody.py) are exactly
what the walk of every stored event finds, over random event streams (handoffs, reauths, forced
logoffs, checkins, receipts, events of one instant, a clock stepped back) arriving in any order,
brought in by a late enrolment, and after retention prunes; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, delete, select

from handoff.ledger import custody, queries
from handoff.ledger.console.device_custody import DeviceCustody, has_agent
from handoff.ledger.console.histories import HistoryView
from handoff.ledger.database import writing
from handoff.ledger.ingest import Message, Recorder
from handoff.ledger.queries import RECEIPTS, ROW_COLUMNS, SESSION, UNANSWERED, Interval, Row, Session, Walk
from handoff.ledger.schema import custody as custody_table
from handoff.ledger.schema import device_sessions, events
from handoff.sim.fleet import SimAppliance
from handoff.testing.ledger import enrolled

T = 1_800_000_000.0
DEVICE = "WOW-1"
PEOPLE = ("ana", "bo", "cy")


def stream(rng: random.Random, cart: SimAppliance, count: int) -> list[Message]:
    """A cart's events as it makes them (seq order): people taking it in turn and from each
    other, sessions ended and begun, receipts for some logoffs (a few for none that exists),
    some events sharing an instant and some stamped by a clock set back."""
    made: list[Message] = []
    ends: list[str] = []
    holder: str | None = None
    at = T
    for _ in range(count):
        at += rng.choice([0.0, 1.0, 30.0, 600.0])
        stamp = at - rng.choice([0.0, 0.0, 0.0, 0.0, 900.0])
        roll = rng.random()
        if roll < 0.12 and ends:
            answered = rng.choice(ends) if rng.random() < 0.9 else "no-such-event"
            kind = rng.choice(["logoff_confirmed", "logoff_unconfirmed"])
            made.append(Message(*cart.emit(kind, stamp, None, for_id=answered)))  # type: ignore[arg-type]
            continue
        if holder is None or roll < 0.25:
            holder = rng.choice(PEOPLE)
            made.append(Message(*cart.emit("checkout", stamp, holder)))
            continue
        kind = rng.choice(["reauth", "forced_logoff", "checkin"])
        reason = {"forced_logoff": "idle_timeout", "checkin": rng.choice(["returned", "abandoned"])}.get(kind)
        topic, payload = cart.emit(kind, stamp, holder, reason=reason)  # type: ignore[arg-type]
        made.append(Message(topic, payload))
        if kind == "forced_logoff" or reason == "returned":
            ends.append(json.loads(payload)["id"])
        holder = None if kind == "checkin" else holder
    return made


def walked(conn: Connection) -> tuple[list[Interval], list[Session]]:
    """The walk of every stored event of the device, from its first, as `queries` walks."""
    mine = events.c.device_id == DEVICE
    rows = conn.execute(
        select(*ROW_COLUMNS).where(mine, events.c.type.in_(SESSION)).order_by(events.c.at, events.c.seq)
    )
    answers: dict[str, str] = {}
    receipts = select(events.c.type, events.c.for_id).where(mine, events.c.type.in_(RECEIPTS))
    for kind, for_id in conn.execute(receipts.order_by(events.c.at, events.c.seq)):
        if for_id and answers.get(for_id) != "confirmed":
            answers[for_id] = "confirmed" if kind == "logoff_confirmed" else "unconfirmed"
    walk = Walk(DEVICE, answers)
    for row in rows:
        walk.take(Row(*row))
    return walk.finish(), walk.sessions


def kept(conn: Connection) -> tuple[list[Interval], list[Session]]:
    """The tables, in walk order, with unanswered logoffs read as the console reads them."""
    unanswered = "pending" if has_agent(conn, DEVICE) else "n/a"

    def read(value: str) -> str:
        return unanswered if value == UNANSWERED else value

    intervals = [
        Interval(r.device_id, r.staff_id, r.start, r.end, r.ended_by, r.sessions, read(r.logoffs))
        for r in conn.execute(select(custody_table).order_by(custody_table.c.start, custody_table.c.id))
    ]
    sessions = [
        Session(r.device_id, r.staff_id, r.session_id, r.start, r.end, r.ended_by, read(r.logoff))
        for r in conn.execute(select(device_sessions).order_by(device_sessions.c.start, device_sessions.c.id))
    ]
    return intervals, sessions


def same_as_the_walk(engine: Engine, rng: random.Random) -> None:
    with engine.connect() as conn:
        expected = walked(conn)
        assert kept(conn) == expected
        assert queries.history(conn, device_id=DEVICE) == expected[0], "the walk is the device history"
        assert any(held.sessions > 1 for held in expected[0]) and any(s.end is None or s.ended_by for s in expected[1])
        first, last = expected[0][0].start, max(held.end or held.start for held in expected[0])
        for _ in range(3):
            since, until = sorted(rng.uniform(first - 60, last + 60) for _ in range(2))
            view = HistoryView.of({}, "", "")
            shown = DeviceCustody.of(conn, DEVICE, since, until, replace(view, descending=False)).rows(conn, None)
            overlapping = [i for i in expected[0] if i.start <= until and (i.end is None or i.end >= since)]
            assert shown == sorted(overlapping, key=lambda held: (held.start, held.staff_id)), "the page's order"


def ingested(engine: Engine, recorder: Recorder, order: list[Message], rng: random.Random) -> None:
    while order:
        size = rng.randint(1, 9)
        batch, order = order[:size], order[size:]
        with writing(engine) as conn:
            recorder.apply(conn, batch, T)


@pytest.mark.parametrize("seed", range(4))
def test_the_tables_are_the_walk_in_any_arrival_order(engine: Engine, seed: int) -> None:
    rng = random.Random(seed)
    cart = SimAppliance("north", DEVICE)
    enrolled(engine, cart)
    made = stream(rng, cart, 160)
    ingested(engine, Recorder("handoff/v1"), made if seed == 0 else rng.sample(made, len(made)), rng)
    same_as_the_walk(engine, rng)
    with writing(engine) as conn:
        before = kept(conn)
        assert custody.rebuild(conn) == 1
        assert kept(conn) == before, "the back-fill finds what ingest kept"


def test_a_late_enrolment_brings_kept_events_in_between_those_already_walked(engine: Engine) -> None:
    """The cart's events arrive before its key is enrolled (kept aside), some of them out of
    order; the enrolment brings them in, into the middle of what was walked meanwhile."""
    rng = random.Random(41)
    cart = SimAppliance("north", DEVICE)
    made = stream(rng, cart, 160)
    early = rng.sample(made, 60)
    recorder = Recorder("handoff/v1")
    with writing(engine) as conn:
        recorder.apply(conn, early, T)
        assert conn.execute(select(custody_table)).first() is None, "nothing believed yet"
    enrolled(engine, cart)
    with engine.connect() as conn:
        assert kept(conn) == walked(conn) and kept(conn)[0]
    ingested(engine, recorder, [message for message in made if message not in early], rng)
    same_as_the_walk(engine, rng)


@pytest.mark.parametrize("seed", range(3))
def test_pruning_walks_again_what_the_pruned_events_touched(engine: Engine, seed: int) -> None:
    """Retention deletes a source's events up to a seq (retention.prune); the tables then hold
    the walk of what is left, including logoffs whose receipts went and not their own."""
    rng = random.Random(100 + seed)
    cart = SimAppliance("north", DEVICE)
    enrolled(engine, cart)
    made = stream(rng, cart, 200)
    ingested(engine, Recorder("handoff/v1"), rng.sample(made, len(made)), rng)
    with writing(engine) as conn:
        source = conn.execute(select(events.c.source).limit(1)).scalar_one()
        upto = rng.randint(40, 120)
        reach = custody.pruning(conn, source, upto)
        conn.execute(delete(events).where(events.c.source == source, events.c.seq <= upto))
        custody.pruned(conn, reach)
    same_as_the_walk(engine, rng)


def test_unanswered_logoffs_read_pending_once_the_device_has_an_agent(engine: Engine) -> None:
    """The first receipt of a device turns its earlier unanswered logoffs from `n/a` to
    `pending` without rewriting them: the tables keep `unanswered` and the reader decides."""
    cart = SimAppliance("north", DEVICE)
    enrolled(engine, cart)
    recorder = Recorder("handoff/v1")
    first: list[Any] = [
        Message(*cart.emit("checkout", T, "ana")),
        Message(*cart.emit("forced_logoff", T + 60, "ana", reason="idle_timeout")),
    ]
    with writing(engine) as conn:
        recorder.apply(conn, first, T)
    with engine.connect() as conn:
        assert [held.logoffs for held in kept(conn)[0]] == ["n/a"] == [held.logoffs for held in walked(conn)[0]]
    later = Message(*cart.emit("reauth", T + 120, "ana"))
    ended = cart.emit("checkin", T + 180, "ana", reason="returned")
    receipt = Message(*cart.emit("logoff_confirmed", T + 181, None, for_id=json.loads(ended[1])["id"]))
    with writing(engine) as conn:
        recorder.apply(conn, [later, Message(*ended), receipt], T)
    with engine.connect() as conn:
        assert [held.logoffs for held in kept(conn)[0]] == ["pending"] == [held.logoffs for held in walked(conn)[0]]
        stored = conn.execute(select(custody_table.c.logoffs)).scalars().all()
        assert stored == [UNANSWERED]


def test_a_walk_again_never_starts_at_a_checkout_sharing_its_instant_with_the_interval_before(
    engine: Engine,
) -> None:
    """Ana reauthenticates and Bo takes the cart in the same second (by seq, Ana first): a later
    event must not re-walk from Bo's checkout, where Ana's session of that instant would be lost."""
    cart = SimAppliance("north", DEVICE)
    enrolled(engine, cart)
    recorder = Recorder("handoff/v1")
    first = [
        Message(*cart.emit("checkout", T, "ana")),
        Message(*cart.emit("reauth", T + 60, "ana")),
        Message(*cart.emit("checkout", T + 60, "bo")),
    ]
    with writing(engine) as conn:
        recorder.apply(conn, first, T)
    with writing(engine) as conn:
        recorder.apply(conn, [Message(*cart.emit("forced_logoff", T + 120, "bo", reason="idle_timeout"))], T)
    with engine.connect() as conn:
        intervals, sessions = walked(conn)
        assert [(s.staff_id, s.start, s.end) for s in sessions][:2] == [("ana", T, T + 60), ("ana", T + 60, T + 60)]
        assert kept(conn) == (intervals, sessions)
