"""Anomalies as the ledger's ingest finds them in signed events from simulated appliances, on
SQLite and PostgreSQL: each kind opens (and the conditions close), a response is queued only
for the kinds configured, and forged events open nothing and queue nothing."""

from __future__ import annotations

import itertools
import json
from datetime import datetime
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, insert, select

from handoff import compact_json
from handoff.audit.signature import signature
from handoff.ledger import responses
from handoff.ledger.anomalies import Hours, Rules
from handoff.ledger.database import writing
from handoff.ledger.ingest import Message, Recorder
from handoff.ledger.schema import exceptions, staff
from handoff.ledger.schema import responses as responses_table
from handoff.sim.fleet import SimAppliance
from tests.kit.ledger import counted, enrolled

PREFIX = "handoff/v1"
T = 1_800_000_000.0
ALL_ON = Rules(
    concurrent_use=True,
    rejections=3,
    within_s=60.0,
    travel={frozenset(("north", "south")): 900.0},
    shifts={"RN": (Hours(frozenset(range(7)), 7 * 60, 19 * 60),)},
    zone=ZoneInfo("UTC"),
    respond=frozenset({"concurrent_use", "impossible_travel", "off_hours"}),
)


def cart(site: str, device_id: str) -> SimAppliance:
    return SimAppliance(site, device_id, PREFIX, staff=itertools.repeat("ana"))


def apply(engine: Engine, messages: list[tuple[str, bytes]], now: float, rules: Rules = ALL_ON) -> None:
    with writing(engine) as conn:
        Recorder(PREFIX, anomalies=rules).apply(conn, [Message(*message) for message in messages], now)


def opened(engine: Engine) -> list[tuple[str, str, str, bool]]:
    """(type, key, device, open) of every anomaly exception."""
    with engine.connect() as conn:
        rows = conn.execute(select(exceptions).where(exceptions.c.type != "untrusted_source").order_by(exceptions.c.id))
        return [(row.type, row.key, row.device_id, row.closed is None) for row in rows]


def queued(engine: Engine) -> list[tuple[str, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(select(responses_table).order_by(responses_table.c.queued))
        return [(row.device_id, row.session_id) for row in rows]


def session_of(payload: bytes) -> str:
    return str(json.loads(payload)["data"]["session_id"])


def test_one_staff_id_live_on_two_devices_opens_concurrent_use_and_queues_the_older_device(engine: Engine) -> None:
    first, second = cart("north", "WOW-1"), cart("north", "WOW-2")
    enrolled(engine, first, second)
    older = first.emit("checkout", T, "ana")
    apply(engine, [older], T + 1)
    assert opened(engine) == [] and queued(engine) == []
    apply(engine, [second.emit("checkout", T + 60, "ana")], T + 61)
    assert opened(engine) == [("concurrent_use", "ana", "WOW-1", True)]
    assert queued(engine) == [("WOW-1", session_of(older[1]))]
    apply(engine, [first.emit("forced_logoff", T + 70, "ana", reason="remote")], T + 71)
    assert opened(engine) == [("concurrent_use", "ana", "WOW-1", False)]


def test_forged_events_open_no_anomaly_and_queue_no_command(engine: Engine) -> None:
    """A forger with publish rights: a checkout on a real device's topic under its own key, and
    one from a device nobody enrolled; then rejected taps and a far-away tap, all forged."""
    real, stranger = cart("north", "WOW-1"), cart("south", "WOW-9")
    enrolled(engine, real)
    apply(engine, [real.emit("checkout", T, "ana")], T + 1)
    impostor = SimAppliance("north", "WOW-1", PREFIX, seq=real.seq, chain=real.chain, key=Ed25519PrivateKey.generate())
    forged = [
        stranger.emit("checkout", T + 10, "ana"),
        impostor.emit("reauth", T + 11, "ana"),
        *(impostor.emit("tap_rejected", T + 12 + n, None, reason="unknown_badge") for n in range(5)),
    ]
    apply(engine, forged, T + 20)
    assert counted(engine)["untrusted"] == len(forged)
    assert opened(engine) == [] and queued(engine) == []


def test_a_tap_at_another_site_sooner_than_the_trip_opens_impossible_travel(engine: Engine) -> None:
    north, south = cart("north", "WOW-N"), cart("south", "WOW-S")
    enrolled(engine, north, south)
    there = north.emit("checkout", T, "ana")
    apply(engine, [there], T + 1)
    apply(engine, [north.emit("checkin", T + 100, "ana", reason="returned")], T + 101)
    arrived = south.emit("checkout", T + 300, "ana")
    apply(engine, [arrived], T + 301)
    [(kind, key, device, still_open)] = opened(engine)
    assert (kind, device, still_open) == ("impossible_travel", "WOW-N", True)
    assert key == f"{json.loads(there[1])['id']}>{json.loads(arrived[1])['id']}"
    apply(engine, [south.emit("checkin", T + 400, "ana", reason="returned")], T + 401)
    apply(engine, [north.emit("checkout", T + 1400, "ana")], T + 1401)
    assert len(opened(engine)) == 1


def test_a_run_of_rejected_taps_opens_repeated_rejections_until_a_tap_is_accepted(engine: Engine) -> None:
    device = cart("north", "WOW-1")
    enrolled(engine, device)
    for n in range(2):
        apply(engine, [device.emit("tap_rejected", T + n * 20, None, reason="unknown_badge")], T + n * 20)
    assert opened(engine) == []
    apply(engine, [device.emit("tap_rejected", T + 50, None, reason="unknown_badge")], T + 51)
    assert opened(engine) == [("repeated_rejections", "WOW-1", "WOW-1", True)]
    assert queued(engine) == []
    apply(engine, [device.emit("checkout", T + 60, "ana")], T + 61)
    assert opened(engine) == [("repeated_rejections", "WOW-1", "WOW-1", False)]


def test_a_checkout_outside_the_roles_shifts_opens_off_hours(engine: Engine) -> None:
    device = cart("north", "WOW-1")
    enrolled(engine, device)
    with writing(engine) as conn:
        conn.execute(insert(staff), [{"staff_id": "ana", "name": "Ana Diaz", "role": "RN", "revoked": False}])
    day = datetime(2027, 3, 3, 12, 0, tzinfo=ZoneInfo("UTC")).timestamp()
    night = datetime(2027, 3, 3, 23, 0, tzinfo=ZoneInfo("UTC")).timestamp()
    apply(engine, [device.emit("checkout", day, "ana")], day)
    apply(engine, [device.emit("checkin", day + 60, "ana", reason="returned")], day + 60)
    assert opened(engine) == []
    late = device.emit("checkout", night, "ana")
    apply(engine, [late], night)
    assert opened(engine) == [("off_hours", json.loads(late[1])["id"], "WOW-1", True)]
    assert queued(engine) == [("WOW-1", session_of(late[1]))]


def test_with_every_rule_off_nothing_opens(engine: Engine) -> None:
    first, second = cart("north", "WOW-1"), cart("south", "WOW-2")
    enrolled(engine, first, second)
    apply(engine, [first.emit("checkout", T, "ana"), second.emit("checkout", T + 1, "ana")], T + 2, Rules())
    assert opened(engine) == []


def result(device: SimAppliance, command_id: str, key: Ed25519PrivateKey | None = None) -> tuple[str, bytes]:
    body = {"id": command_id, "command": "force_logoff", "ok": True, "message": "done", "time": "2027-01-01T00:00:00Z"}
    signed = {**body, "signature": signature(key or device.key, body)}
    return f"{device.base}/cmd_result", compact_json.dumps(signed).encode()


def test_the_appliances_signed_cmd_result_is_shown_on_the_exception_and_a_forged_one_is_not(engine: Engine) -> None:
    first, second = cart("north", "WOW-1"), cart("north", "WOW-2")
    enrolled(engine, first, second)
    apply(engine, [first.emit("checkout", T, "ana"), second.emit("checkout", T + 60, "ana")], T + 61)
    with writing(engine) as conn:
        [command] = responses.due(conn)
        responses.sent(conn, command, T + 62)
    forged = result(first, command.id, Ed25519PrivateKey.generate())
    other_device = result(second, command.id)
    apply(engine, [forged, other_device], T + 63)
    with engine.connect() as conn:
        assert conn.execute(select(responses_table.c.result)).scalar_one() is None
    apply(engine, [result(first, command.id)], T + 64)
    with engine.connect() as conn:
        row = conn.execute(select(responses_table)).one()
        detail = conn.execute(select(exceptions.c.detail).where(exceptions.c.type == "concurrent_use")).scalar_one()
    assert row.answered == T + 64 and json.loads(row.result)["ok"] is True
    assert detail.splitlines()[1:] == [
        f"automated response: force_logoff {command.id} to WOW-1 queued",
        f"force_logoff {command.id} sent to WOW-1 at 2027-01-15T08:01:02.000Z",
        f"WOW-1 answered {command.id}: ok: done",
    ]


def test_a_command_whose_session_has_ended_is_not_sent(engine: Engine) -> None:
    first, second = cart("north", "WOW-1"), cart("north", "WOW-2")
    enrolled(engine, first, second)
    apply(engine, [first.emit("checkout", T, "ana"), second.emit("checkout", T + 60, "ana")], T + 61)
    apply(engine, [first.emit("checkin", T + 70, "ana", reason="returned")], T + 71)
    with writing(engine) as conn:
        assert responses.due(conn) == []
    with engine.connect() as conn:
        assert conn.execute(select(responses_table.c.outcome)).scalar_one() == responses.SESSION_ENDED
