"""The ledger on SQLite and on PostgreSQL, the same cases on both (docs/ledger.md).

Events come from a real appliance (`handoff run` with simulated badges) or from the fleet
simulator, through a real mosquitto, into real `handoff ledger run` processes; the cases that
only concern what a batch does to the database drive the ingest directly.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import signal
import subprocess
import sys
import threading
import time
from importlib.resources import files
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, func, select

from handoff.ledger.database import SCHEMA_HEAD, engine_for, writing
from handoff.ledger.ingest import Message, Recorder, evaluate
from handoff.ledger.queries import fleet, who
from handoff.ledger.receiver import RECEIVE_MAXIMUM
from handoff.ledger.schema import POSTGRESQL_ONLY, counters, devices, events, exceptions, metadata, sources, users
from handoff.sim.fleet import SimAppliance
from handoff.timefmt import rfc3339
from tests.kit.appliance import ANA, BO, Running
from tests.kit.broker import Broker
from tests.kit.cli import CliRunner, handoff_env
from tests.kit.config import DEVICE, READER, SITE, Layout
from tests.kit.imports import modules_after
from tests.kit.ledger import (
    Ledger,
    audit_key,
    enrol_key,
    enrolled,
    enrolled_fleet,
    ledger_config,
    queue_backlog,
    sim_fleet,
    stored,
)
from tests.kit.publish import publish
from tests.kit.wait import wait_for

PREFIX = "handoff/v1"


def test_a_shift_through_a_real_appliance_answers_who_and_history(
    appliance: Layout, cli: CliRunner, tmp_path: Path, database: str
) -> None:
    key_file, key = audit_key(tmp_path)
    engine = engine_for(database)
    enrol_key(engine, DEVICE, key.public_key())
    with Broker(tmp_path / "broker") as broker:
        config = ledger_config(tmp_path, database, broker.port)
        ledger = Ledger(config, tmp_path / "ledger.log")
        ledger.start()
        policy = {"retap_guard_s": 0, "idle_timeout_s": 3, "custody_timeout_s": 8}
        cart = Running(appliance, broker, cli, policy, audit={"key_file": str(key_file)})
        expected: list[tuple[float, str | None, bool]] = []

        def mark(events: int, staff: str | None, logged_in: bool) -> None:
            """Once the cart has published `events` events, who holds it now (strictly after the
            last one's time, before anything the next step causes) is `staff`."""
            cart.event_types(events)
            expected.append((time.time(), staff, logged_in))

        try:
            mark(0, None, False)
            cart.tap(ANA)
            mark(1, "ana", True)
            cart.tap(BO)
            mark(4, "bo", True)
            mark(5, "bo", False)
            cart.tap(BO)
            mark(6, "bo", True)
            cart.tap(BO)
            mark(7, None, False)
            cart.tap(ANA)
            mark(8, "ana", True)
            mark(9, "ana", False)
            mark(10, None, False)
            kinds = cart.event_types(10)
            assert [kind for kind, _, _ in kinds].count("org.handoff.forced_logoff") == 3, kinds
            assert kinds[-1] == ("org.handoff.checkin", "ana", "abandoned"), kinds
            assert wait_for(lambda: stored(engine) >= 10)
            for at, staff, logged_in in expected:
                asked = cli("ledger", "who", DEVICE, "--at", rfc3339(at), "--format", "json", "-c", config)
                assert asked.returncode == 0, asked.stderr
                answer = json.loads(asked.stdout)
                assert (answer["staff_id"], answer["logged_in"]) == (staff, logged_in), (at, answer)
            shown = cli("ledger", "history", "--device", DEVICE, "--format", "json", "-c", config)
            intervals = [(row["staff_id"], row["ended_by"]) for row in json.loads(shown.stdout)]
            assert intervals == [("ana", "handoff"), ("bo", "returned"), ("ana", "abandoned")]
            by_staff = json.loads(cli("ledger", "history", "--staff", "bo", "--format", "json", "-c", config).stdout)
            assert [row["sessions"] for row in by_staff] == [2]
            engine.dispose()
        finally:
            cart.stop()
            cart.events.close()
            ledger.kill(signal.SIGTERM)


def test_a_forger_with_publish_rights_changes_nothing_a_real_appliance_said(
    appliance: Layout, cli: CliRunner, tmp_path: Path, engine: Engine, database: str
) -> None:
    """The forgeries of issue 21 against a real `handoff run` whose key is enrolled: a made-up
    source with a correct chain, seq 1000 with a junk chain, the real source's next seq under
    another key, forged retained state and status, an unsigned confirmation on another device's
    topic. The ledger's answers do not move; the real appliance's next events are believed."""
    key_file, key = audit_key(tmp_path)
    enrol_key(engine, DEVICE, key.public_key())
    with Broker(tmp_path / "broker") as broker:
        config = ledger_config(tmp_path, database, broker.port)
        ledger = Ledger(config, tmp_path / "ledger.log")
        ledger.start()
        cart = Running(appliance, broker, cli, {"retap_guard_s": 0.5}, audit={"key_file": str(key_file)})
        try:
            cart.tap(ANA)
            last = cart.events.wait_for_count(lambda m: "/events/" in m.topic, 1)[-1].json()
            assert wait_for(lambda: stored(engine) >= 1)
            at = rfc3339(time.time())

            def answers() -> tuple[str, str, list[tuple[str, str]]]:
                asked = cli("ledger", "who", DEVICE, "--at", at, "--format", "json", "-c", config).stdout
                past = cli("ledger", "history", "--device", DEVICE, "--format", "json", "-c", config).stdout
                flags = json.loads(cli("ledger", "exceptions", "--format", "json", "-c", config).stdout)
                return asked, past, sorted((f["type"], f["source"]) for f in flags if f["type"] != "untrusted_source")

            before = answers()
            assert json.loads(before[0])["staff_id"] == "ana"
            base = f"handoff/v1/{SITE}/{DEVICE}"
            made_up = SimAppliance(SITE, DEVICE, reader="evil", staff=itertools.repeat("mallory"))
            junk = SimAppliance(SITE, DEVICE, reader="junk", seq=999, chain="0" * 64)
            next_seq = SimAppliance(SITE, DEVICE, reader=READER, seq=last["data"]["seq"], chain=last["data"]["chain"])
            elsewhere = SimAppliance(SITE, "WOW-OTHER")
            unsigned_confirmation = json.loads(elsewhere.emit("logoff_confirmed", time.time(), "ana", for_id="x")[1])
            del unsigned_confirmation["data"]["signature"]
            forged = [
                (*made_up.emit("checkout", time.time() - 30, "mallory"), False),
                (*junk.emit("checkout", time.time() - 20, "mallory"), False),
                (*next_seq.emit("checkin", time.time(), "ana", reason="returned"), False),
                (f"{base}/state", made_up.state(time.time()), True),
                (f"{base}/status", made_up.status("offline"), True),
                (elsewhere.base + "/events/logoff_confirmed", json.dumps(unsigned_confirmation).encode(), False),
            ]
            publish(broker.port, forged)
            assert wait_for(lambda: counted(engine, "untrusted") >= len(forged)), counted(engine, "untrusted")
            assert answers() == before
            cart.tap(BO)
            assert wait_for(lambda: stored(engine) >= 4)
            after = json.loads(
                cli("ledger", "who", DEVICE, "--at", rfc3339(time.time()), "-c", config, "--format", "json").stdout
            )
            assert after["staff_id"] == "bo"
            with engine.connect() as conn:
                kinds = {row.type for row in conn.execute(select(exceptions).where(exceptions.c.closed.is_(None)))}
                assert "untrusted_source" in kinds and not kinds & {"chain_break", "seq_gap", "appliance_offline"}
                assert not conn.execute(select(events).where(events.c.chain_ok.is_not(True))).all()
                assert [row.staff_id for row in fleet(conn, time.time(), 3600, 60)] == ["bo"]
        finally:
            cart.stop()
            cart.events.close()
            ledger.kill(signal.SIGTERM)


def counted(engine: Engine, name: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(counters.c.value).where(counters.c.name == name)).scalar() or 0)


def test_the_migrated_schema_is_the_one_schema_py_describes(engine: Engine) -> None:
    """Alembic's own comparison of the database its migrations made against the metadata, but
    for the trigram index made on PostgreSQL alone: an index on an expression, which Alembic
    cannot compare (tests/test_console_exception_search.py shows PostgreSQL reading it)."""
    uncompared = {
        index.name for table in metadata.tables.values() for index in table.indexes if index.info.get(POSTGRESQL_ONLY)
    }

    def compared(item: object, name: str | None, kind: str, reflected: bool, other: object) -> bool:
        return kind != "index" or name not in uncompared

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": compared})
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_a_database_at_the_newest_revision_opens_without_loading_alembic(tmp_path: Path) -> None:
    """`SCHEMA_HEAD` is the migrations' own head, and a database already there is opened without
    them: a database behind it is migrated (the test above), one at it is read as it is."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(files("handoff.ledger") / "migrations"))
    assert ScriptDirectory.from_config(config).get_current_head() == SCHEMA_HEAD
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    engine_for(url).dispose()
    names = modules_after(f"from handoff.ledger.database import engine_for\nengine_for({url!r})")
    assert not {name for name in names if name.partition(".")[0] == "alembic"}


def test_killed_again_and_again_mid_stream_the_ledger_stores_every_event_exactly_once(
    tmp_path: Path, cli: CliRunner, engine: Engine, database: str, rng: random.Random
) -> None:
    with Broker(tmp_path / "broker") as broker:
        ledger = Ledger(ledger_config(tmp_path, database, broker.port), tmp_path / "ledger.log")
        ledger.start()
        ledger.kill()
        enrolled_fleet(engine, tmp_path / "keys", 4)
        fleet = sim_fleet(broker.port, rate=1500, events=3000, keys=tmp_path / "keys")
        for _ in range(4):
            ledger.start()
            time.sleep(rng.uniform(0.3, 0.9))
            ledger.kill()
        assert fleet.wait(60) == 0
        ledger.start()
        assert wait_for(lambda: stored(engine) >= 3000, 60), stored(engine)
        time.sleep(1.0)
        ledger.kill(signal.SIGTERM)
    with engine.connect() as conn:
        assert stored(engine) == 3000
        held = conn.execute(select(sources.c.contiguous_upto, sources.c.max_seq)).all()
        assert sorted(held) == [(750, 750)] * 4
        assert conn.execute(select(func.count()).select_from(events).where(events.c.chain_ok.is_(False))).scalar() == 0
        assert not conn.execute(select(exceptions).where(exceptions.c.type.in_(("seq_gap", "chain_break")))).all()


def test_a_backlog_larger_than_the_receive_maximum_is_held_within_it(
    tmp_path: Path, engine: Engine, database: str
) -> None:
    """30,000 messages queued while the ledger was down, nearly twice its Receive Maximum.
    mosquitto 2.0.11 sends a resumed session far more than the Receive Maximum the ledger
    announced (eclipse/mosquitto#2301): the ledger must stop reading rather than hold them all."""
    with Broker(tmp_path / "broker", extra="max_queued_messages 0") as broker:
        ledger = Ledger(ledger_config(tmp_path, database, broker.port), tmp_path / "ledger.log")
        queue_backlog(ledger, engine, broker.port, tmp_path / "keys", 15_000)
        ledger.start()
        assert wait_for(lambda: stored(engine) >= 15_000, 120), stored(engine)
        ledger.kill(signal.SIGTERM)
    log = ledger.log.read_text()
    taken = int(re.findall(r"(\d+) messages taken from the broker and committed", log)[-1])
    held = int(re.findall(r"at most (\d+) messages held unacknowledged", log)[-1])
    assert taken >= 30_000, taken
    assert 0 < held <= RECEIVE_MAXIMUM, f"{held} messages held unacknowledged at once"


def made(appliance: SimAppliance, count: int, start: float = 1_800_000_000.0) -> list[Message]:
    return [Message(*appliance.next_event(start + n)) for n in range(count)]


def test_duplicates_and_reordering_across_sources_are_stored_once_and_verified(
    engine: Engine, rng: random.Random
) -> None:
    first, second = SimAppliance("site", "WOW-1"), SimAppliance("site", "WOW-2")
    enrolled(engine, first, second)
    stream = made(first, 30) + made(second, 30)
    shuffled = stream + rng.sample(stream, 20)
    rng.shuffle(shuffled)
    recorder = Recorder(PREFIX)
    for start in range(0, len(shuffled), 7):
        with engine.begin() as conn:
            recorder.apply(conn, shuffled[start : start + 7], 1_800_000_100.0)
    with engine.connect() as conn:
        assert stored(engine) == 60
        assert conn.execute(select(func.count()).select_from(events).where(events.c.chain_ok.is_(True))).scalar() == 60
        assert not conn.execute(select(exceptions).where(exceptions.c.closed.is_(None))).all(), (
            "holes filled later close"
        )


def test_two_ledgers_writing_at_once_take_turns_and_lose_no_watermark_or_link(engine: Engine) -> None:
    """Two ledgers on `$share` get consecutive events of one appliance: seq 2 in one batch,
    seq 3 in another, written at once. Each batch reads the watermark and the events around its
    own before writing; were they to overlap, seq 3's batch would not see seq 2 (uncommitted),
    leave the link between them unchecked, open a seq_gap and write back the old watermark."""
    cart = SimAppliance("site", "WOW-1")
    enrolled(engine, cart)
    stream = made(cart, 3)
    recorder = Recorder(PREFIX)
    with writing(engine) as conn:
        recorder.apply(conn, stream[:1], 1_800_000_001.0)

    def other_ledger() -> None:
        with writing(engine) as conn:
            recorder.apply(conn, stream[2:], 1_800_000_002.0)

    second = threading.Thread(target=other_ledger)
    with writing(engine) as conn:
        recorder.apply(conn, stream[1:2], 1_800_000_002.0)
        second.start()
        second.join(2.0)
        assert second.is_alive(), "the second batch waits for the first to commit"
    second.join(30)
    with engine.connect() as conn:
        assert conn.execute(select(sources.c.contiguous_upto, sources.c.max_seq)).one() == (3, 3)
        assert conn.execute(select(events.c.seq, events.c.chain_ok).order_by(events.c.seq)).all() == [
            (1, True),
            (2, True),
            (3, True),
        ]
        assert not conn.execute(select(exceptions)).all()


def test_a_gap_opens_an_exception_that_closes_when_the_missing_events_arrive(engine: Engine) -> None:
    cart = SimAppliance("site", "WOW-1")
    enrolled(engine, cart)
    stream = made(cart, 6)
    recorder = Recorder(PREFIX)
    with engine.begin() as conn:
        recorder.apply(conn, stream[:2] + stream[4:], 1_800_000_010.0)
    with engine.connect() as conn:
        gap = conn.execute(select(exceptions).where(exceptions.c.type == "seq_gap")).one()
        assert gap.closed is None and "missing seq 3" in gap.detail
    with engine.begin() as conn:
        recorder.apply(conn, stream[2:4], 1_800_000_020.0)
    with engine.connect() as conn:
        gap = conn.execute(select(exceptions).where(exceptions.c.type == "seq_gap")).one()
        assert (gap.opened, gap.closed) == (1_800_000_010.0, 1_800_000_020.0)
        assert conn.execute(select(func.count()).select_from(events).where(events.c.chain_ok.is_(True))).scalar() == 6


def test_an_altered_event_its_own_appliance_signed_is_stored_and_opens_a_chain_break(engine: Engine) -> None:
    """An appliance that signs what does not link (its database restored, its code broken): the
    signature is good, so the event is believed and stored, and the chain says what is wrong."""
    cart = SimAppliance("site", "WOW-1")
    enrolled(engine, cart)
    stream = made(cart, 3)
    body = json.loads(stream[1].payload)
    body["data"]["staff_id"] = "mallory"
    stream[1] = Message(stream[1].topic, cart.signed_event(body))
    with engine.begin() as conn:
        Recorder(PREFIX).apply(conn, stream, 1_800_000_005.0)
    with engine.connect() as conn:
        assert stored(engine) == 3
        broken = conn.execute(select(exceptions.c.key).where(exceptions.c.type == "chain_break")).scalars().all()
        assert broken == ["urn:handoff:site:sim-WOW-1#2"], (
            "the next event still links to the chain value event 2 carries"
        )


def test_an_event_with_no_canonical_json_opens_a_chain_break_and_does_not_stop_the_batch(engine: Engine) -> None:
    """On a lab bench (`allow_untrusted`): such an event cannot be signed, so a trusting ledger
    keeps it apart (test_trust.py); believed anyway, it must still not stop the batch."""
    stream = made(SimAppliance("site", "WOW-1"), 3)
    text = stream[1].payload.decode().replace('"seq":2,', f'"seq":2,"dose":{2**60},', 1)
    assert str(2**60) in text, "an integer RFC 8785 cannot write (beyond 2^53), which JSON parsers read"
    stream[1] = Message(stream[1].topic, text.encode())
    with engine.begin() as conn:
        Recorder(PREFIX, allow_untrusted=True).apply(conn, stream, 1_800_000_005.0)
    with engine.connect() as conn:
        assert stored(engine) == 3
        broken = conn.execute(select(exceptions.c.key).where(exceptions.c.type == "chain_break")).scalars().all()
        assert broken == ["urn:handoff:site:sim-WOW-1#2"]


def test_overdue_offline_and_holds_many_open_and_close_on_time(engine: Engine) -> None:
    """Who holds a device comes from its trusted events, never from its retained `state`."""
    carts = [SimAppliance("site", f"WOW-{n}", staff=itertools.repeat("ana")) for n in range(3)]
    enrolled(engine, *carts)
    recorder = Recorder(PREFIX)
    with engine.begin() as conn:
        for cart in carts:
            recorder.apply(conn, made(cart, 1, 1000.0), 1000.0)
            cart.holder = None
            recorder.apply(conn, [Message(f"{cart.base}/state", cart.state(1000.0))], 1000.0)
        recorder.apply(conn, [Message(f"{carts[0].base}/status", carts[0].status("offline"))], 1000.0)

    def open_now(now: float) -> set[tuple[str, str]]:
        with engine.begin() as conn:
            evaluate(conn, now, overdue_after_s=100, offline_after_s=50, holds_many=2)
            rows = conn.execute(select(exceptions.c.type, exceptions.c.key).where(exceptions.c.closed.is_(None)))
            return {(row.type, row.key) for row in rows}

    assert open_now(1010.0) == {("appliance_offline", "WOW-0"), ("holds_many", "ana")}
    assert ("appliance_offline", "WOW-1") in open_now(1051.0)
    assert ("overdue", "WOW-2") in open_now(1101.0)
    with engine.begin() as conn:
        for cart in carts:
            cart.holder = "ana"
            recorder.apply(conn, made(cart, 1, 1102.0), 1102.0)
            recorder.apply(conn, [Message(f"{cart.base}/status", cart.status("online"))], 1102.0)
    assert open_now(1103.0) == set()


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        (f"{PREFIX}/site/WOW-1/events/checkout", b"not json", "not_json"),
        (f"{PREFIX}/site/WOW-1/events/checkout", b'{"specversion": "0.3"}', "not_a_cloudevent"),
        (f"{PREFIX}/site/WOW-1/events/payday", None, "wrong_type"),
        (f"{PREFIX}/site/WOW-9/events/checkout", None, "topic_mismatch"),
        (f"{PREFIX}/site/WOW-1/events/checkout", b"[" * 70_000, "too_large"),
        (f"{PREFIX}/site/WOW-1/status", b'{"status": "asleep"}', "bad_status"),
        (f"{PREFIX}/site/WOW-1/events/checkout", b"NUL", "nul_character"),
        (f"{PREFIX}/site/WOW-1/state", b'{"state": "in_use", "staff_id": "an\\u0000a"}', "nul_character"),
    ],
)
def test_bad_messages_are_counted_and_never_stored_as_truth(
    engine: Engine, topic: str, payload: bytes | None, reason: str
) -> None:
    good = made(SimAppliance("site", "WOW-1"), 1)[0]
    if payload is None:
        body = json.loads(good.payload)
        body["type"] = "org.handoff.payday" if "payday" in topic else body["type"]
        payload = json.dumps(body).encode()
    elif payload == b"NUL":
        body = json.loads(good.payload)
        body["data"]["staff_id"] = "ana\x00"
        payload = json.dumps(body).encode()
    with engine.begin() as conn:
        refused = Recorder(PREFIX).apply(conn, [Message(topic, payload)], 1.0)
    with engine.connect() as conn:
        assert refused == 1 and stored(engine) == 0
        assert conn.execute(select(counters.c.value).where(counters.c.name == reason)).scalar() == 1
        assert not conn.execute(select(devices)).all() or reason == "bad_status"


def test_who_on_an_unknown_device_is_nobody_and_a_bad_time_is_one_line(
    tmp_path: Path, cli: CliRunner, engine: Engine, database: str
) -> None:
    config = ledger_config(tmp_path, database, 1883)
    asked = cli("ledger", "who", "NOPE", "--at", "2027-01-15T08:00:00Z", "--format", "json", "-c", config)
    assert asked.returncode == 0 and json.loads(asked.stdout)["staff_id"] is None
    bad = cli("ledger", "who", "NOPE", "--at", "yesterday", "-c", config)
    assert bad.returncode == 2 and "--at" in bad.stderr and len(bad.stderr.splitlines()) == 1
    with engine.connect() as conn:
        assert who(conn, "NOPE", 0.0).logged_in is False


def test_users_add_stores_an_argon2id_hash_and_refuses_a_short_password(
    tmp_path: Path, engine: Engine, database: str
) -> None:
    config = ledger_config(tmp_path, database, 1883)
    command = [sys.executable, "-m", "handoff", "ledger", "users", "add", "ines", "--role", "admin", "-c", str(config)]
    added = subprocess.run(
        command, input="correct horse battery\n", text=True, capture_output=True, env=handoff_env(), check=False
    )
    assert added.returncode == 0, added.stderr
    short = subprocess.run(command, input="short\n", text=True, capture_output=True, env=handoff_env(), check=False)
    assert short.returncode == 2 and "12 characters" in short.stderr
    with engine.connect() as conn:
        row = conn.execute(select(users)).one()
    assert row.role == "admin" and row.password_hash.startswith("$argon2id$")


def test_two_ledgers_on_a_shared_subscription_split_the_stream_and_lose_nothing_when_one_dies(
    tmp_path: Path, engine: Engine, database: str
) -> None:
    with Broker(tmp_path / "broker") as broker:
        ledgers = [
            Ledger(
                ledger_config(tmp_path, database, broker.port, client_id=name, shared_group="ledger"),
                tmp_path / f"{name}.log",
            )
            for name in ("ledger-a", "ledger-b")
        ]
        for ledger in ledgers:
            ledger.start()
        enrolled_fleet(engine, tmp_path / "keys", 4)
        fleet = sim_fleet(broker.port, rate=1000, events=3000, keys=tmp_path / "keys")
        assert wait_for(lambda: stored(engine) > 500)
        ledgers[1].kill()
        assert fleet.wait(60) == 0
        ledgers[1].start()
        assert wait_for(lambda: stored(engine) >= 3000, 60), stored(engine)
        time.sleep(1.0)
        for ledger in ledgers:
            ledger.kill(signal.SIGTERM)
    assert stored(engine) == 3000
    with engine.connect() as conn:
        assert not conn.execute(
            select(exceptions).where(exceptions.c.type == "seq_gap", exceptions.c.closed.is_(None))
        ).all()
    taken = [int(re.findall(r"(\d+) messages taken", ledger.log.read_text())[-1]) for ledger in ledgers]
    assert all(taken), f"each ledger took part of the stream: {taken}"
