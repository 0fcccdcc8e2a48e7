"""The ledger believes trusted messages only (docs/security.md), on SQLite and on PostgreSQL.

Each forgery is what anyone with publish rights on the broker could send; the ledger's answers
(`who`, `history`, the open exceptions, the fleet, the seq watermarks) must be the same after
it as before, `untrusted_source` open, and the real appliance's later events still believed.
The cases about what a batch does drive the ingest directly; the last ones run the real
programs: mosquitto, `handoff ledger run`, a forger publishing with paho, the CLI, the console.
"""

from __future__ import annotations

import itertools
import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from starlette.testclient import TestClient

from handoff.agent.receipt import ActionOutcome, make_receipt
from handoff.audit.keys import public_pem
from handoff.audit.signature import fingerprint
from handoff.ledger import trust
from handoff.ledger.config import load_ledger_config
from handoff.ledger.console.app import create_app
from handoff.ledger.database import writing
from handoff.ledger.enrolment import enrol, listing
from handoff.ledger.ingest import Message, Recorder, evaluate
from handoff.ledger.queries import fleet, history, open_exceptions, who
from handoff.ledger.schema import counters, events, exceptions, receipts, sources, untrusted
from handoff.sim.fleet import SimAppliance
from handoff.timefmt import rfc3339
from tests.kit.broker import Broker
from tests.kit.cli import CliRunner
from tests.kit.console import csrf_of, log_in
from tests.kit.ledger import Ledger, add_user, enrolled, ledger_config
from tests.kit.publish import publish

PREFIX = "handoff/v1"
T = 1_800_000_000.0
LATER = T + 10_000
Forgery = Callable[[SimAppliance, SimAppliance, str], list[Message]]
"""(the real cart, another enrolled cart, the id of the real cart's forced_logoff) -> what is forged."""


def apply(engine: Engine, messages: list[Message], now: float = T + 1, recorder: Recorder | None = None) -> int:
    with writing(engine) as conn:
        return (recorder or Recorder(PREFIX)).apply(conn, messages, now)


def event(topic_payload: tuple[str, bytes]) -> Message:
    return Message(*topic_payload)


def unsigned(message: Message) -> Message:
    body = json.loads(message.payload)
    del body["data"]["signature"]
    return Message(message.topic, json.dumps(body).encode())


def event_id(message: Message) -> str:
    return str(json.loads(message.payload)["id"])


def answers(engine: Engine) -> tuple[Any, ...]:
    """Everything the ledger tells anyone about custody: `who` at several instants, both kinds
    of history, the open exceptions but `untrusted_source`, the fleet, the seq watermarks."""
    with writing(engine) as conn:
        evaluate(conn, LATER, overdue_after_s=10**6, offline_after_s=10**6, holds_many=1)
    with engine.connect() as conn:
        return (
            [who(conn, device, at) for device in ("WOW-1", "WOW-2") for at in (T + 50, T + 120, T + 150, LATER)],
            history(conn, device_id="WOW-1"),
            history(conn, staff_id="mallory"),
            sorted((f.type, f.device_id, f.key) for f in open_exceptions(conn) if f.type != "untrusted_source"),
            fleet(conn, LATER, 10**6, 10**6),
            conn.execute(select(sources).order_by(sources.c.source)).all(),
            conn.execute(select(func.count()).select_from(receipts)).scalar_one(),
        )


def untrusted_sources(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [flag.source for flag in open_exceptions(conn) if flag.type == "untrusted_source"]


def made_up_source(cart: SimAppliance, other: SimAppliance, logoff: str) -> list[Message]:
    """A source of its own, correctly chained and signed by its own key: a back-dated checkout."""
    forger = SimAppliance(cart.site, cart.device_id, reader="evil", staff=itertools.repeat("mallory"))
    return [event(forger.emit("checkout", T + 10, "mallory")), event(forger.emit("checkin", T + 110, "mallory"))]


def seq_1000_junk_chain(cart: SimAppliance, other: SimAppliance, logoff: str) -> list[Message]:
    forger = SimAppliance(cart.site, cart.device_id, reader="junk", seq=999, chain="0" * 64)
    return [unsigned(event(forger.emit("checkout", T + 60, "mallory")))]


def confirmation_on_another_devices_topic(cart: SimAppliance, other: SimAppliance, logoff: str) -> list[Message]:
    stranger = SimAppliance(cart.site, "WOW-2", reader="stranger")
    return [unsigned(event(stranger.emit("logoff_confirmed", T + 140, "ana", for_id=logoff)))]


def confirmation_by_another_enrolled_device(cart: SimAppliance, other: SimAppliance, logoff: str) -> list[Message]:
    """WOW-2 is enrolled and its appliance signs: still, WOW-2 cannot settle WOW-1's logoff."""
    return [event(other.emit("logoff_confirmed", T + 140, "ana", for_id=logoff))]


def unsigned_confirmation_on_the_real_topic(cart: SimAppliance, other: SimAppliance, logoff: str) -> list[Message]:
    forger = SimAppliance(cart.site, cart.device_id, reader=cart.reader_id, seq=cart.seq, chain=cart.chain)
    return [unsigned(event(forger.emit("logoff_confirmed", T + 140, "ana", for_id=logoff)))]


def next_seq_checkin_on_the_real_source(cart: SimAppliance, other: SimAppliance, logoff: str) -> list[Message]:
    """The real source's next seq, linked to its real chain, signed by a key nobody enrolled."""
    forger = SimAppliance(cart.site, cart.device_id, reader=cart.reader_id, seq=cart.seq, chain=cart.chain)
    return [event(forger.emit("checkin", T + 140, "ana", reason="returned"))]


def retained_state_and_status(cart: SimAppliance, other: SimAppliance, logoff: str) -> list[Message]:
    """The real cart said it is offline; the forger says online and available, and that
    mallory holds two other carts."""
    forger = SimAppliance(cart.site, cart.device_id)
    forged = [
        Message(f"{cart.base}/state", forger.state(T + 140)),
        Message(f"{cart.base}/status", forger.status("online")),
    ]
    for name in ("WOW-7", "WOW-8"):
        other = SimAppliance(cart.site, name, holder="mallory")
        forged.append(Message(f"{other.base}/state", other.state(T + 140)))
        forged.append(Message(f"{other.base}/status", other.status("online")))
    stolen = SimAppliance(cart.site, cart.device_id, key=cart.key)
    unsigned_status = json.loads(stolen.status("online"))
    del unsigned_status["signature"]
    forged.append(Message(f"{cart.base}/status", json.dumps(unsigned_status).encode()))
    return forged


@pytest.mark.parametrize(
    "forgery",
    [
        made_up_source,
        seq_1000_junk_chain,
        confirmation_on_another_devices_topic,
        confirmation_by_another_enrolled_device,
        unsigned_confirmation_on_the_real_topic,
        next_seq_checkin_on_the_real_source,
        retained_state_and_status,
    ],
)
def test_a_forgery_changes_no_answer_opens_untrusted_source_and_the_real_cart_is_still_believed(
    engine: Engine, forgery: Forgery
) -> None:
    cart, second = SimAppliance("site", "WOW-1"), SimAppliance("site", "WOW-2")
    enrolled(engine, cart, second)
    checkout = event(cart.emit("checkout", T, "ana"))
    logoff = event(cart.emit("forced_logoff", T + 100, "ana", reason="idle_timeout"))
    unconfirmed = event(cart.emit("logoff_unconfirmed", T + 130, "ana", reason="timeout", for_id=event_id(logoff)))
    apply(engine, [checkout, logoff, unconfirmed, Message(f"{cart.base}/status", cart.status("offline"))])
    apply(engine, [event(second.emit("checkout", T + 5, "bo"))])
    before = answers(engine)
    assert ("logoff_unconfirmed", "WOW-1", f"WOW-1:{event_id(logoff)}") in before[3]
    assert ("appliance_offline", "WOW-1", "WOW-1") in before[3]

    kept = forgery(cart, second, event_id(logoff))
    refused = apply(engine, kept, T + 200)

    if forgery is confirmation_by_another_enrolled_device:
        assert refused == 0, "WOW-2's own event is believed as WOW-2's"
        after = answers(engine)
        assert after[3] == before[3], "but it settles nothing on WOW-1"
    else:
        assert refused == len(kept)
        assert answers(engine) == before
        assert untrusted_sources(engine), "untrusted_source is open"
        with engine.connect() as conn:
            assert conn.execute(select(counters.c.value).where(counters.c.name == "untrusted")).scalar() == len(kept)
    apply(
        engine,
        [event(cart.emit("checkin", T + 300, "ana", reason="handoff")), event(cart.emit("checkout", T + 301, "bo"))],
    )
    with engine.connect() as conn:
        assert who(conn, "WOW-1", T + 400).staff_id == "bo"
        assert who(conn, "WOW-1", T + 50).staff_id == "ana"
        real = conn.execute(select(sources).where(sources.c.source == "urn:handoff:site:sim-WOW-1")).one()
        assert (real.first_seq, real.contiguous_upto, real.max_seq) == (1, 5, 5)
        assert not conn.execute(select(events).where(events.c.chain_ok.is_not(True))).all()
        kinds = {flag.type for flag in open_exceptions(conn)}
        assert not kinds & {"chain_break", "seq_gap", "holds_many"}, kinds
        assert "mallory" not in {row.staff_id for row in fleet(conn, LATER, 10**6, 10**6)}


def test_a_forged_status_after_each_real_one_in_a_batch_does_not_silence_the_device(engine: Engine) -> None:
    cart = SimAppliance("site", "WOW-1")
    forger = SimAppliance("site", "WOW-1", reader="evil")
    enrolled(engine, cart)
    topic = f"{cart.base}/status"
    batch = [Message(topic, cart.status("online")), Message(topic, forger.status("offline"))] * 3
    assert apply(engine, batch, T) == 3
    with engine.connect() as conn:
        assert [(row.online, row.last_heard) for row in fleet(conn, T + 1, 10**6, 60)] == [(True, T)]
        assert conn.execute(select(untrusted.c.kind)).scalars().all() == ["status"], "one kept per topic"


def test_a_trusted_confirmation_of_the_same_device_closes_its_logoff_unconfirmed(engine: Engine) -> None:
    cart = SimAppliance("site", "WOW-1")
    enrolled(engine, cart)
    logoff = event(cart.emit("forced_logoff", T, "ana", reason="idle_timeout"))
    apply(
        engine,
        [logoff, event(cart.emit("logoff_unconfirmed", T + 30, "ana", reason="timeout", for_id=event_id(logoff)))],
    )
    assert any(flag.type == "logoff_unconfirmed" for flag in open_exceptions(engine.connect()))
    apply(engine, [event(cart.emit("logoff_confirmed", T + 40, "ana", for_id=event_id(logoff)))])
    with engine.connect() as conn:
        assert not [flag for flag in open_exceptions(conn) if flag.type == "logoff_unconfirmed"]


def test_enrolling_later_brings_the_kept_messages_that_verify_into_the_record(engine: Engine) -> None:
    cart = SimAppliance("site", "WOW-1", staff=itertools.cycle(["ana", "bo"]))
    stream = [event(cart.next_event(T + n * 60)) for n in range(6)]
    status = Message(f"{cart.base}/status", cart.status("online"))
    forged = made_up_source(cart, cart, "")
    apply(engine, [*stream[:3], status], T + 200)
    apply(engine, stream[3:] + forged, T + 400)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(events)).scalar_one() == 0
        assert who(conn, "WOW-1", T + 130).staff_id is None
        assert fleet(conn, LATER, 10**6, 10**6) == []
        enrolled_now, pending = listing(conn)
    assert enrolled_now == []
    assert [(device.device_id, device.fingerprint) for device in pending] == [("WOW-1", fingerprint(cart.key))]
    assert sorted(untrusted_sources(engine)) == ["site/WOW-1", "urn:handoff:site:evil", "urn:handoff:site:sim-WOW-1"]

    with writing(engine) as conn:
        joined = enrol(conn, Recorder(PREFIX), "WOW-1", cart.key.public_key(), [], actor="admin", now=T + 500)
    assert joined == 7, "six events and the status; the forger's two stay apart"
    with engine.connect() as conn:
        assert who(conn, "WOW-1", T + 30).staff_id == "ana"
        assert [(row.staff_id, row.ended_by) for row in history(conn, device_id="WOW-1")] == [
            ("ana", "returned"),
            ("bo", "returned"),
            ("ana", "returned"),
        ]
        assert conn.execute(select(func.count()).select_from(events).where(events.c.chain_ok.is_(True))).scalar() == 6
        now = fleet(conn, LATER, 10**6, 10**6)
        assert [(row.device_id, row.state, row.last_heard) for row in now] == [("WOW-1", "available", T + 400)]
        assert conn.execute(select(func.count()).select_from(untrusted)).scalar_one() == 2
        assert listing(conn)[0][0].fingerprint == fingerprint(cart.key)
    assert untrusted_sources(engine) == ["urn:handoff:site:evil"]


def test_re_enrolling_a_swapped_pi_replaces_its_key(engine: Engine) -> None:
    old = SimAppliance("site", "WOW-1")
    enrolled(engine, old)
    apply(engine, [event(old.next_event(T))])
    new = SimAppliance("site", "WOW-1", reader="pi-2")
    apply(engine, [event(new.next_event(T + 60))])
    assert untrusted_sources(engine) == ["urn:handoff:site:pi-2"]
    enrolled(engine, new)
    apply(engine, [event(old.next_event(T + 120))])
    with engine.connect() as conn:
        assert [row.source for row in conn.execute(select(events.c.source).order_by(events.c.at))] == [
            "urn:handoff:site:sim-WOW-1",
            "urn:handoff:site:pi-2",
        ]
        assert who(conn, "WOW-1", T + 200).staff_id == "staff-000", "the old Pi's checkin is not believed"
    assert untrusted_sources(engine) == ["urn:handoff:site:sim-WOW-1"]


def test_receipts_count_only_under_an_agent_key_enrolled_for_that_device(engine: Engine) -> None:
    cart, other = SimAppliance("site", "WOW-1"), SimAppliance("site", "WOW-2")
    mine, theirs = SimAppliance("x", "agent-1"), SimAppliance("x", "agent-2")
    with writing(engine) as conn:
        enrol(conn, Recorder(PREFIX), "WOW-1", cart.key.public_key(), [mine.key.public_key()], actor="t", now=T)
        enrol(conn, Recorder(PREFIX), "WOW-2", other.key.public_key(), [theirs.key.public_key()], actor="t", now=T)
    logoff = json.loads(cart.emit("forced_logoff", T, "ana", reason="handoff")[1])

    def receipt(key: SimAppliance, name: str) -> Message:
        made = make_receipt(
            key.key, event=logoff, outcomes=[ActionOutcome("logind", True)], source="urn:a", receipt_id=name, now=T
        )
        return Message(f"{cart.base}/receipts", json.dumps(made).encode())

    assert apply(engine, [receipt(theirs, "r-other"), receipt(mine, "r-mine")]) == 1
    with engine.connect() as conn:
        assert conn.execute(select(receipts.c.id)).scalars().all() == ["r-mine"]
        assert conn.execute(select(untrusted.c.kind)).scalars().all() == ["receipts"]


def test_what_is_kept_apart_is_bounded_per_source_and_in_all(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bounds are shrunk for the test (the real ones are 2,000 per source, 20,000 in all)."""
    monkeypatch.setattr(trust, "KEPT_PER_SOURCE", 30)
    monkeypatch.setattr(trust, "KEPT_IN_ALL", 50)
    flood = SimAppliance("site", "WOW-1", reader="flood")
    apply(engine, [event(flood.next_event(T + n)) for n in range(40)])
    many = [SimAppliance("site", f"WOW-{n}", reader=f"r{n}") for n in range(40)]
    apply(engine, [event(one.next_event(T)) for one in many])
    apply(engine, [Message(f"{flood.base}/status", flood.status("online")) for _ in range(5)])
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(untrusted)).scalar_one() == 50
        grouped = select(untrusted.c.source, func.count()).group_by(untrusted.c.source)
        per = {source: count for source, count in conn.execute(grouped)}
        assert per["urn:handoff:site:flood"] == 30
        dropped = conn.execute(select(counters.c.value).where(counters.c.name == "untrusted_dropped")).scalar()
        assert dropped == 10 + 20 + 1, "the flood's ten over its share, twenty sources past the total, one status"
        assert conn.execute(select(func.count()).select_from(exceptions)).scalar_one() == 21


def test_allow_untrusted_believes_unsigned_messages_as_before(engine: Engine) -> None:
    cart = SimAppliance("site", "WOW-1")
    apply(engine, [unsigned(event(cart.next_event(T)))], recorder=Recorder(PREFIX, allow_untrusted=True))
    with engine.connect() as conn:
        assert who(conn, "WOW-1", T + 1).staff_id == "staff-000"
        assert not open_exceptions(conn)


def test_a_forger_on_a_real_broker_changes_nothing_and_enrolment_through_the_cli_and_console(
    tmp_path: Path, cli: CliRunner, engine: Engine, database: str
) -> None:
    cart = SimAppliance("site", "WOW-1", staff=itertools.repeat("ana"))
    with Broker(tmp_path / "broker") as broker:
        config = ledger_config(tmp_path, database, broker.port)
        ledger = Ledger(config, tmp_path / "ledger.log")
        ledger.start()
        try:
            status = (f"{cart.base}/status", cart.status("online"), True)
            publish(broker.port, [status, (*cart.next_event(time.time() - 120), False)])
            assert wait_for(lambda: untrusted_count(engine) == 2)
            shown = cli("ledger", "devices", "--format", "json", "-c", config)
            assert json.loads(shown.stdout) == [
                {"device_id": "WOW-1", "enrolled": False, "fingerprint": fingerprint(cart.key), "kept": 2}
            ]
            key = tmp_path / "WOW-1.pub"
            key.write_bytes(public_pem(cart.key))
            done = cli("ledger", "enrol", "WOW-1", "--key", key, "-c", config)
            assert done.returncode == 0, done.stderr
            assert "2 message(s) kept from before now joined the record" in done.stdout
            forged = cli("sim", "forge", "WOW-1", "--site", "site", "--mqtt", f"mqtt://127.0.0.1:{broker.port}")
            assert forged.returncode == 0, forged.stderr
            assert wait_for(lambda: untrusted_count(engine) == 1)
            now = cli("ledger", "who", "WOW-1", "--at", rfc3339(time.time()), "--format", "json", "-c", config)
            assert json.loads(now.stdout)["staff_id"] == "ana", now.stdout
            listed = cli("ledger", "exceptions", "--format", "json", "-c", config)
            assert [row["source"] for row in json.loads(listed.stdout)] == ["urn:handoff:site:forger"]
            missing = cli("ledger", "enrol", "WOW-1", "--key", tmp_path / "nope.pub", "-c", config)
            assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "--key" in missing.stderr
        finally:
            ledger.kill(signal.SIGTERM)
    add_user(config, "admin", "admin", "a long enough password")
    with TestClient(create_app(load_ledger_config(config), engine), base_url="https://testserver") as client:
        log_in(client, "admin", "a long enough password")
        page = client.get("/fleet").text
        assert "WOW-1" in page and "mallory" not in page
        audit = client.get("/audit").text
        assert "enrolled" in audit and fingerprint(cart.key) in audit


def untrusted_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(untrusted)).scalar_one())


def wait_for(check: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not (result := check()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return result


def test_the_console_shows_pending_fingerprints_and_only_an_admin_enrols_with_its_csrf_token(
    tmp_path: Path, engine: Engine, database: str
) -> None:
    cart = SimAppliance("site", "WOW-1")
    impostor = SimAppliance("site", "WOW-1", reader="evil")
    apply(engine, [Message(f"{cart.base}/status", cart.status("online")), event(cart.next_event(T))])
    config = ledger_config(tmp_path, database, 1883, ledger={"allow_untrusted": False})
    add_user(config, "admin", "admin", "a long enough password")
    add_user(config, "viewer", "viewer", "another long password")
    with TestClient(create_app(load_ledger_config(config), engine), base_url="https://testserver") as client:
        log_in(client, "viewer", "another long password")
        assert client.get("/enrolment").status_code == 403
        log_in(client, "admin", "a long enough password")
        page = client.get("/enrolment").text
        assert fingerprint(cart.key) in page and "Lab bench" not in page
        token = csrf_of(page)
        form = {"csrf": token, "fingerprint": fingerprint(cart.key)}
        assert client.post("/enrolment/WOW-1", data={**form, "csrf": "forged"}).status_code == 403
        apply(engine, [Message(f"{cart.base}/status", impostor.status("online"))])
        assert client.post("/enrolment/WOW-1", data=form, follow_redirects=False).status_code == 409, (
            "the key presented changed since the page was shown"
        )
        apply(engine, [Message(f"{cart.base}/status", cart.status("online"))])
        done = client.post("/enrolment/WOW-1", data=form, follow_redirects=False)
        assert done.status_code == 303
        page = client.get("/enrolment").text
        assert page.count(fingerprint(cart.key)) == 1 and "None." in page
        assert "enrolled" in client.get("/audit").text
    with engine.connect() as conn:
        assert who(conn, "WOW-1", T + 1).staff_id == "staff-000"
    lab = ledger_config(tmp_path, database, 1883, name="lab", ledger={"allow_untrusted": True})
    with TestClient(create_app(load_ledger_config(lab), engine), base_url="https://testserver") as client:
        assert "Lab bench" in client.get("/login").text


def test_verdicts_worked_out_ahead_are_worked_out_again_when_an_enrolment_came_between(engine: Engine) -> None:
    cart = SimAppliance("site", "WOW-1")
    forger = SimAppliance("site", "WOW-1", reader="evil")
    recorder = Recorder(PREFIX)
    first = [event(cart.next_event(T))]
    early = recorder.verify_ahead(engine, first)
    enrolled(engine, cart)
    with writing(engine) as conn:
        recorder.apply(conn, first, T, early)
    later = [event(cart.next_event(T + 60)), event(forger.next_event(T + 61))]
    with writing(engine) as conn:
        recorder.apply(conn, later, T + 60, recorder.verify_ahead(engine, later))
    assert early is not None and early.result().verdicts == {0: False}, "worked out before the enrolment"
    with engine.connect() as conn:
        assert [row.seq for row in conn.execute(select(events.c.seq).order_by(events.c.seq))] == [1, 2]
        assert conn.execute(select(untrusted.c.source)).scalars().all() == ["urn:handoff:site:evil"]
