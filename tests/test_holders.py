"""The holder kept on each device's row is `who` at the latest instant, whatever order the
events arrive in: folded forwards when a batch is newer than the row, asked again when not."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import Engine, select

from handoff.ledger.database import writing
from handoff.ledger.ingest import Message, Recorder
from handoff.ledger.queries import who
from handoff.ledger.schema import devices
from handoff.sim.fleet import SimAppliance
from tests.kit.ledger import enrolled

T = 1_800_000_000.0


@pytest.mark.parametrize("seed", range(6))
def test_the_row_holder_is_who_at_the_latest_instant_in_any_arrival_order(engine: Engine, seed: int) -> None:
    rng = random.Random(seed)
    cart = SimAppliance("site", "WOW-1")
    enrolled(engine, cart)
    stream: list[Message] = []
    holder: str | None = None
    for n in range(40):
        at = T + n * 10
        if holder is None:
            holder = rng.choice(["ana", "bo", "cy"])
            stream.append(Message(*cart.emit("checkout", at, holder)))
            continue
        kind = rng.choice(["reauth", "forced_logoff", "checkin", "tap_rejected"])
        reason = {"forced_logoff": "idle_timeout", "checkin": "returned"}.get(kind)
        stream.append(Message(*cart.emit(kind, at, holder, reason=reason)))  # type: ignore[arg-type]
        holder = None if kind == "checkin" else holder
    order = stream if seed % 2 else rng.sample(stream, len(stream))
    recorder = Recorder("handoff/v1")
    while order:
        size = rng.randint(1, 7)
        batch, order = order[:size], order[size:]
        with writing(engine) as conn:
            recorder.apply(conn, batch, T)
            row = conn.execute(select(devices)).one()
            now = who(conn, "WOW-1", float("inf"))
            state = "available" if now.staff_id is None else "in_use" if now.logged_in else "locked"
            assert (row.state, row.staff_id, row.since) == (state, now.staff_id, now.since)
