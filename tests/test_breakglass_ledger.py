"""The ledger takes `break_glass` events into the record like any other (their review:
test_break_glass_review.py): a type it refused would leave a gap in `seq` and the chain."""

from __future__ import annotations

import itertools
import json
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, select

from handoff import db
from handoff.audit.checkpoint import CheckpointPolicy
from handoff.cloudevents import EventContext, uuid7
from handoff.config import PolicyConfig
from handoff.core.inputs import BreakGlass, Input, Tap
from handoff.core.machine import step
from handoff.core.state import initial_state
from handoff.ledger.ingest import Message, Recorder
from handoff.ledger.queries import who
from handoff.ledger.schema import counters, events
from handoff.store import Store
from tests.kit.config import DEVICE, PREFIX, READER, SITE
from tests.kit.ledger import enrol_key

CONTEXT = EventContext(SITE, DEVICE, READER, clock_synced=True)
REF = "c" * 64


def test_a_break_glass_use_is_stored_in_order_and_gives_the_holder(engine: Engine) -> None:
    ids = itertools.count()
    state, now = initial_state(0.0), 1_800_000_000.0
    made = []
    inputs: list[Input] = [
        Tap("nfc:usb", REF, "cy", revoked=True, role="RN"),
        BreakGlass("nfc:usb", REF, "cy", revoked=True, role="RN"),
    ]
    for event_input in inputs:
        now += 3
        outcome = step(state, event_input, now, PolicyConfig().for_core(), lambda: uuid7(1_800_000_000 + next(ids)))
        state = outcome.state
        made.extend(outcome.events)
    key = Ed25519PrivateKey.generate()
    with tempfile.TemporaryDirectory() as where:
        store = Store(db.connect(Path(where)), checkpoints=CheckpointPolicy(key, 100, 300.0))
        published = [store.outgoing(event) for event in store.commit(state, made, CONTEXT)]
    prefix = PREFIX.removesuffix(f"/{SITE}/{DEVICE}")
    enrol_key(engine, DEVICE, key.public_key(), prefix=prefix)
    batch = [Message(f"{PREFIX}/events/{json.loads(p)['type'][12:]}", p) for p in published]
    with engine.begin() as conn:
        refused = Recorder(prefix).apply(conn, batch, now)
    with engine.connect() as conn:
        assert refused == 0 and not conn.execute(select(counters)).all()
        kinds = conn.execute(select(events.c.type).order_by(events.c.seq)).scalars().all()
        assert kinds == ["tap_rejected", "break_glass", "checkout"]
        holder = who(conn, DEVICE, now + 1)
        assert holder.staff_id == "cy" and holder.logged_in
