"""The ledger's review of each break-glass use (docs/breakglass.md): a trusted `break_glass` event
opens one `break_glass_review` per use, a forged or unsigned one opens nothing, uses over the
limit are marked counting across devices, and only an admin's review with a note closes it; on
SQLite and PostgreSQL, through the real ingest and the real console application in process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from handoff.ledger.break_glass import KIND, key
from handoff.ledger.config import load_ledger_config
from handoff.ledger.console.app import create_app
from handoff.ledger.database import writing
from handoff.ledger.enrolment import enrol
from handoff.ledger.ingest import Message, Recorder
from handoff.ledger.schema import audit_log, events, exceptions
from handoff.receipt import ActionOutcome, make_receipt
from handoff.sim.fleet import SimAppliance
from tests.kit.console import T0, csrf_of, log_in, words
from tests.kit.ledger import add_user, enrolled, ledger_config

PREFIX = "handoff/v1"
DAY = 86400.0
ADMIN, VIEWER = ("review-admin", "admin password 1"), ("review-viewer", "viewer password 1")


def ingest(engine: Engine, made: list[tuple[str, bytes]], now: float, limit: int = 2) -> int:
    with writing(engine) as conn:
        return Recorder(PREFIX, break_glass_per_30d=limit).apply(conn, [Message(*m) for m in made], now)


def reviews(engine: Engine) -> list[tuple[str, str, str, float | None]]:
    with engine.connect() as conn:
        rows = conn.execute(select(exceptions).where(exceptions.c.type == KIND).order_by(exceptions.c.id))
        return [(row.device_id, row.key, row.detail, row.closed) for row in rows]


def event_id(made: tuple[str, bytes]) -> str:
    return str(json.loads(made[1])["id"])


def test_each_trusted_break_glass_use_opens_one_review_keyed_by_its_event(engine: Engine) -> None:
    cart = SimAppliance("north", "WOW-1")
    enrolled(engine, cart)
    first = cart.emit("break_glass", T0, "ana", reason="revoked")
    second = cart.emit("break_glass", T0 + 60, "ana", reason="previous_session_open")
    assert ingest(engine, [first, second], T0 + 61) == 0
    assert ingest(engine, [first, second], T0 + 62) == 0, "a redelivery is the same use"
    found = reviews(engine)
    assert [(device, flag_key) for device, flag_key, _, _ in found] == [
        ("WOW-1", key(event_id(first))),
        ("WOW-1", key(event_id(second))),
    ]
    assert "over revoked: use 1 in 30 days (limit 2)" in found[0][2] and "OVER" not in found[1][2]
    assert all(closed is None for *_, closed in found)


def test_a_forged_or_unsigned_break_glass_opens_no_review(engine: Engine) -> None:
    cart = SimAppliance("north", "WOW-1")
    enrolled(engine, cart)
    forger = SimAppliance("north", "WOW-1", key=Ed25519PrivateKey.generate())
    forged = forger.emit("break_glass", T0, "mallory", reason="revoked")
    topic, payload = cart.emit("break_glass", T0, "mallory", reason="revoked")
    body = json.loads(payload)
    del body["data"]["signature"]
    unsigned = (topic, json.dumps(body).encode())
    assert ingest(engine, [forged, unsigned], T0 + 1) == 2
    assert reviews(engine) == []
    with engine.connect() as conn:
        assert conn.execute(select(events.c.id)).all() == []
    genuine = cart.emit("break_glass", T0 + 2, "ana", reason="revoked")
    ingest(engine, [genuine], T0 + 3)
    assert [flag_key for _, flag_key, _, _ in reviews(engine)] == [key(event_id(genuine))], "the test can fail"


def test_uses_over_the_limit_are_marked_counting_every_device_over_30_days(engine: Engine) -> None:
    one, two = SimAppliance("north", "WOW-1"), SimAppliance("south", "WOW-2")
    enrolled(engine, one, two)
    old = one.emit("break_glass", T0 - 31 * DAY, "bo", reason="revoked")
    ingest(engine, [old], T0 - 31 * DAY)
    made = [
        one.emit("break_glass", T0, "bo", reason="revoked"),
        two.emit("break_glass", T0 + DAY, "bo", reason="revoked"),
        one.emit("break_glass", T0 + 2 * DAY, "bo", reason="unknown_badge"),
        two.emit("break_glass", T0 + 2 * DAY, "cy", reason="revoked"),
    ]
    for item in made:
        ingest(engine, [item], T0 + 3 * DAY)
    details = [detail for _, _, detail, _ in reviews(engine)]
    assert "use 1 in 30 days" in details[0], "the use 31 days before counts no more"
    assert "use 1 in 30 days" in details[1] and "use 2 in 30 days" in details[2]
    assert "use 3 in 30 days (limit 2); OVER THE LIMIT of 2" in details[3], "counted on two devices"
    assert "cy" in details[4] and "OVER" not in details[4]


@pytest.fixture
def console(engine: Engine, database: str, tmp_path: Path) -> Iterator[TestClient]:
    config = ledger_config(tmp_path, database, 1883)
    add_user(config, *ADMIN[:1], "admin", ADMIN[1])
    add_user(config, *VIEWER[:1], "viewer", VIEWER[1])
    with TestClient(create_app(load_ledger_config(config), engine), base_url="https://testserver") as client:
        yield client


def an_emergency_session(engine: Engine) -> tuple[int, list[str]]:
    """On WOW-1: bo breaks the glass, works, is logged off idle and the agent confirms it; then
    ana takes the device. The review's id and the event types of bo's session."""
    cart, agent = SimAppliance("north", "WOW-1"), Ed25519PrivateKey.generate()
    with writing(engine) as conn:
        enrol(conn, Recorder(PREFIX), cart.device_id, cart.key.public_key(), [agent.public_key()], actor="t", now=T0)
    session = "s-emergency"
    broke = cart.emit("break_glass", T0, "bo", reason="revoked", session_id=session)
    took = cart.emit("checkout", T0 + 0.1, "bo", session_id=session)
    ended = cart.emit("forced_logoff", T0 + 300, "bo", reason="idle_timeout", session_id=session)
    receipt = make_receipt(
        agent,
        event=json.loads(ended[1]),
        outcomes=[ActionOutcome("logind", True)],
        source="urn:handoff:north:agent:ws-1",
        receipt_id="receipt-1",
        now=T0 + 301,
    )
    answered = (f"{cart.base}/receipts", json.dumps(receipt).encode())
    later = cart.emit("checkout", T0 + 900, "ana")
    assert ingest(engine, [broke, took, ended, answered, later], T0 + 901) == 0
    with engine.connect() as conn:
        flag_id = conn.execute(select(exceptions.c.id).where(exceptions.c.type == KIND)).scalar_one()
    return int(flag_id), ["break_glass", "checkout", "forced_logoff", "logoff_receipt"]


def test_the_review_page_shows_the_use_and_the_session_until_it_ended(engine: Engine, console: TestClient) -> None:
    flag_id, session = an_emergency_session(engine)
    log_in(console, *VIEWER)
    page = words(console.get(f"/exceptions/{flag_id}/review"))
    assert "revoked" in page and "WOW-1" in page and "1 of a limit of 2" in page
    shown = [kind for kind in ("break_glass", "checkout", "forced_logoff", "logoff_receipt") if kind in page]
    assert shown == session and page.count('<th scope="row">checkout</th>') == 1, "ana's later checkout is not in it"
    assert "idle_timeout" in page and "done" in page
    assert "Close as reviewed" not in page, "a viewer gets no review form"
    assert console.get("/exceptions/999999/review").status_code == 404


def test_only_an_admins_review_with_a_note_closes_it_and_is_audited(engine: Engine, console: TestClient) -> None:
    flag_id, _ = an_emergency_session(engine)
    log_in(console, *ADMIN)
    listing = console.get("/exceptions")
    assert f"/exceptions/{flag_id}/review" in listing.text
    acked = console.post(
        "/exceptions/acknowledge", data={"csrf": csrf_of(listing.text), "id": str(flag_id), "note": "seen"}
    )
    assert acked.status_code == 200
    assert reviews(engine)[0][3] is None, "acknowledging in bulk does not close a review"
    page = console.get(f"/exceptions/{flag_id}/review")
    token = csrf_of(page.text)
    assert console.post(f"/exceptions/{flag_id}/review", data={"csrf": token, "note": "  "}).status_code == 400
    assert console.post(f"/exceptions/{flag_id}/review", data={"csrf": "forged", "note": "x"}).status_code == 403
    assert reviews(engine)[0][3] is None
    console.cookies.clear()
    log_in(console, *VIEWER)
    viewer_token = csrf_of(console.get(f"/exceptions/{flag_id}/review").text)
    refused = console.post(f"/exceptions/{flag_id}/review", data={"csrf": viewer_token, "note": "fine"})
    assert refused.status_code == 403 and reviews(engine)[0][3] is None
    console.cookies.clear()
    log_in(console, *ADMIN)
    token = csrf_of(console.get(f"/exceptions/{flag_id}/review").text)
    done = console.post(f"/exceptions/{flag_id}/review", data={"csrf": token, "note": "code blue bed 4, checked"})
    assert done.status_code == 200 and "Reviewed by" in words(done) and "code blue bed 4" in words(done)
    assert reviews(engine)[0][3] is not None
    with engine.connect() as conn:
        trail = conn.execute(select(audit_log.c.actor, audit_log.c.action, audit_log.c.detail)).all()
    assert any(
        actor == ADMIN[0] and action == "break_glass_reviewed" and "code blue bed 4" in detail
        for actor, action, detail in trail
    )
    again = console.post(f"/exceptions/{flag_id}/review", data={"csrf": token, "note": "twice"})
    assert again.status_code == 400, "a closed review stays as it was reviewed"
