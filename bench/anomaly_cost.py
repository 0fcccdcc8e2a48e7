"""What the anomaly checks add to the ledger's ingest CPU (goal: under 10 %).

One backlog of EVENTS signed events from APPLIANCES simulated carts on two sites is made once:
checkouts and checkins of each cart's own staff, except that a float nurse's badge checks out
at one cart on each site every SHARED_EVERY turns, together (so `concurrent_use` and
`impossible_travel` open and close now and then: about 2 in 1,000 events), and a rejected tap
every REJECT_EVERY events (so `repeated_rejections` is asked each batch). The same backlog
is then ingested through `Recorder.apply` in batches of the ledger's size into a fresh
PostgreSQL database, with every check on (a travel table, the rejection threshold, shifts for
the staff's role) and with every check off, in alternating rounds: the process CPU of each
(signature verification on the pool threads included, as in `handoff ledger run`), the best
round of each and the median, and their ratios.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Iterator
from statistics import median
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select

from handoff.ledger.anomalies import Hours, Rules
from handoff.ledger.database import engine_for, writing
from handoff.ledger.ingest import Message, Recorder
from handoff.ledger.receiver import BATCH_MAX
from handoff.ledger.schema import exceptions, staff
from handoff.sim.fleet import SimAppliance
from handoff.testing.ledger import enrolled
from handoff.testing.postgres import create_database, drop_database

APPLIANCES = 50
PREFIX = "handoff/v1"
SHARED_EVERY = 10
REJECT_EVERY = 53
T = 1_800_000_000.0
ON = Rules(
    concurrent_use=True,
    rejections=5,
    within_s=60.0,
    travel={frozenset(("north", "south")): 900.0},
    shifts={"RN": (Hours(frozenset(range(7)), 0, 0),)},
    zone=ZoneInfo("America/New_York"),
)
OFF = Rules()


def staff_of(cart: int) -> Iterator[str]:
    """Each cart's own ten staff ids; at two carts (one a site) every SHARED_EVERY-th checkout the float nurse."""
    for turn in itertools.count():
        shared = cart in (1, 2) and turn % SHARED_EVERY == SHARED_EVERY - 1
        yield "float" if shared else f"staff-{cart:03d}-{turn % 10}"


def backlog(fleet: list[SimAppliance], events: int) -> list[Message]:
    made = []
    for n, cart in zip(range(events), itertools.cycle(fleet), strict=False):
        at = T + n * 0.05
        if n % REJECT_EVERY == 0:
            made.append(Message(*cart.emit("tap_rejected", at, None, reason="unknown_badge")))
        else:
            made.append(Message(*cart.next_event(at)))
    return made


def ingest(fleet: list[SimAppliance], messages: list[Message], rules: Rules) -> tuple[float, int]:
    """The process CPU seconds of ingesting `messages` into a fresh database, and the anomalies opened."""
    url = create_database()
    engine = engine_for(url)
    try:
        enrolled(engine, *fleet)
        with writing(engine) as conn:
            names = {f"staff-{cart:03d}-{k}" for cart in range(APPLIANCES) for k in range(10)} | {"float"}
            conn.execute(insert(staff), [{"staff_id": n, "name": n, "role": "RN", "revoked": False} for n in names])
        recorder = Recorder(PREFIX, anomalies=rules)
        start = time.process_time()
        for first in range(0, len(messages), BATCH_MAX):
            with writing(engine) as conn:
                recorder.apply(conn, messages[first : first + BATCH_MAX], T + first * 0.05)
        took = time.process_time() - start
        with engine.connect() as conn:
            kinds = exceptions.c.type.in_(["concurrent_use", "impossible_travel", "repeated_rejections", "off_hours"])
            opened = int(conn.execute(select(func.count()).select_from(exceptions).where(kinds)).scalar_one())
        return took, opened
    finally:
        engine.dispose()
        drop_database(url)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    fleet = [
        SimAppliance("north" if n % 2 else "south", f"SIM-{n:05d}", PREFIX, staff=staff_of(n))
        for n in range(APPLIANCES)
    ]
    messages = backlog(fleet, args.events)
    on: list[float] = []
    off: list[float] = []
    opened = 0
    for _ in range(args.rounds):
        took, opened = ingest(fleet, messages, ON)
        on.append(took)
        off.append(ingest(fleet, messages, OFF)[0])
    best_on, best_off = min(on), min(off)
    print(
        f"ledger ingest of {args.events} signed events into PostgreSQL, batches of {BATCH_MAX}, best of {args.rounds}"
    )
    print(
        f"  every anomaly check on:  {best_on:.2f} s CPU ({best_on / args.events * 1e6:.0f} us an event), "
        f"{opened} anomalies opened"
    )
    print(f"  every anomaly check off: {best_off:.2f} s CPU ({best_off / args.events * 1e6:.0f} us an event)")
    print(f"  rounds on: {', '.join(f'{s:.2f}' for s in on)}; off: {', '.join(f'{s:.2f}' for s in off)}")
    print(f"  ratio on / off: {best_on / best_off:.3f} best, {median(on) / median(off):.3f} median (goal < 1.10)")


if __name__ == "__main__":
    main()
