"""Nothing stops the ledger: poison values, database outages, a full disk, ledgers racing the
migration, a 3.1.1-only broker; and what time and duplicates open. On SQLite and PostgreSQL.

Values no column can hold are refused before the signature check (a forger's poison stops
nothing either); clock_skew and duplicate_conflict are about trusted messages, so the carts
here are enrolled. The cases about what a batch does drive the ingest directly; the rest run real
`handoff ledger run` processes against a real mosquitto or amqtt, a PostgreSQL cluster of the
test's own (stopped and started by it) and a tmpfs of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from handoff.audit.signature import signed
from handoff.ledger.config import load_ledger_config
from handoff.ledger.database import engine_for, writing
from handoff.ledger.ingest import Message, Recorder
from handoff.ledger.receiver import Receiver
from handoff.ledger.schema import devices, events, exceptions, set_aside
from handoff.sim.fleet import SimAppliance
from tests.kit.amqtt_broker import AmqttBroker
from tests.kit.broker import Broker
from tests.kit.cli import CliRunner, handoff_env
from tests.kit.ledger import (
    Ledger,
    counted,
    enrolled,
    enrolled_fleet,
    ledger_config,
    made,
    queue_backlog,
    sim_fleet,
    spawned_children,
    sqlite_ledger,
    stored,
    wait_for,
)
from tests.kit.nats_broker import NatsBroker
from tests.kit.postgres import Cluster, create_database, drop_database
from tests.kit.publish import publish

PREFIX = "handoff/v1"
T0 = 1_800_000_000.0
NOW = T0 + 60


def event(appliance: SimAppliance, change: Any, start: float = T0, *, signed_again: bool = False) -> Message:
    """The appliance's next event, its body changed by `change` after sealing (so its link no
    longer verifies): a forger's event, whose signature no longer verifies either; or, signed
    again, a broken appliance's, believed if the appliance is enrolled."""
    message = made(appliance, 1, start)[0]
    body = json.loads(message.payload)
    change(body)
    return Message(message.topic, appliance.signed_event(body) if signed_again else json.dumps(body).encode())


def _set(path: str, value: object) -> Any:
    def change(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for key in parents:
            body = body[key]
        body[last] = value

    return change


POISON = [
    ("id", _set("id", "x" * 65), "too_long"),
    ("session_id", _set("data.session_id", "s" * 65), "too_long"),
    ("reason", _set("data.reason", "r" * 65), "too_long"),
    ("staff_id", _set("data.staff_id", "a" * 256), "too_long"),
    ("seq 2^63", _set("data.seq", 2**63), "out_of_range"),
    ("date only", _set("time", "2026-01-01"), "bad_time"),
    ("no offset", _set("time", "2026-01-01T08:00:00"), "bad_time"),
]


@pytest.mark.parametrize(("field", "change", "reason"), POISON, ids=[field for field, _, _ in POISON])
def test_a_value_the_database_cannot_hold_is_refused_and_counted_and_the_batch_goes_on(
    engine: Engine, field: str, change: Any, reason: str
) -> None:
    """The poison comes from a device nobody enrolled: it is refused for its value all the same,
    before the signature check, so that not even the untrusted table has to hold it."""
    cart = SimAppliance("site", "WOW-1")
    enrolled(engine, cart)
    good = made(cart, 2, T0)
    poison = event(SimAppliance("site", "WOW-2"), change)
    with writing(engine) as conn:
        refused = Recorder(PREFIX).apply(conn, [good[0], poison, good[1]], NOW)
    assert refused == 1, field
    assert stored(engine) == 2
    assert counted(engine) == {reason: 1}


def test_a_device_id_chain_or_result_too_long_for_its_column_is_refused_and_a_long_state_is_harmless(
    engine: Engine,
) -> None:
    """A retained `state` says only that the cart is alive: who holds it comes from its events,
    so a state of "decommissioned-pending" (longer than the column) is written nowhere."""
    cart = SimAppliance("site", "WOW-1")
    enrolled(engine, cart)
    long_device = SimAppliance("site", "D" * 300)
    claim = {"state": "decommissioned-pending", "staff_id": None, "session_id": None, "since": None, "seq": 1}
    state = signed(cart.key, claim)
    checkpoint = {"id": "c1", "data": {"seq": 1, "chain": "c" * 65, "source": "urn:x"}}
    receipt = {"id": "r1", "data": {"for": "e1", "result": "r" * 17}}
    poison = [
        made(long_device, 1, T0)[0],
        Message(f"{PREFIX}/site/WOW-1/state", json.dumps(state).encode()),
        Message(f"{PREFIX}/site/WOW-1/checkpoint", json.dumps(checkpoint).encode()),
        Message(f"{PREFIX}/site/WOW-1/receipts", json.dumps(receipt).encode()),
    ]
    with writing(engine) as conn:
        assert Recorder(PREFIX).apply(conn, [*poison, *made(cart, 1, T0)], NOW) == 3
    assert stored(engine) == 1
    assert counted(engine) == {"too_long": 3}
    with engine.connect() as conn:
        assert conn.execute(select(devices.c.device_id, devices.c.state)).all() == [("WOW-1", "in_use")]


def test_a_conflicting_duplicate_is_counted_and_opens_duplicate_conflict(engine: Engine) -> None:
    """The appliance itself signed two contents under one id (its database restored, its code
    broken): both copies are believed, so one of them is not what happened."""
    appliance = SimAppliance("site", "WOW-1")
    enrolled(engine, appliance)
    stream = made(appliance, 2, T0)
    altered = json.loads(stream[1].payload)
    altered["data"]["staff_id"] = "someone-else"
    forged = Message(stream[1].topic, appliance.signed_event(altered))
    recorder = Recorder(PREFIX)
    with writing(engine) as conn:
        recorder.apply(conn, stream, NOW)
    with writing(engine) as conn:
        recorder.apply(conn, [stream[1], forged], NOW)
    assert stored(engine) == 2
    assert counted(engine) == {"duplicate_conflict": 1}
    with engine.connect() as conn:
        opened = conn.execute(select(exceptions).where(exceptions.c.type == "duplicate_conflict")).one()
        kept = conn.execute(select(events.c.staff_id).where(events.c.id == altered["id"])).scalar_one()
    assert opened.key == altered["id"] and opened.device_id == "WOW-1"
    assert kept != "someone-else", "the first copy stays the record"


def test_a_forged_copy_of_a_stored_event_is_untrusted_and_no_duplicate_conflict(engine: Engine) -> None:
    """Anyone with publish rights could otherwise open duplicate_conflict on any event."""
    appliance = SimAppliance("site", "WOW-1")
    enrolled(engine, appliance)
    stream = made(appliance, 2, T0)
    altered = json.loads(stream[1].payload)
    altered["data"]["staff_id"] = "someone-else"
    with writing(engine) as conn:
        Recorder(PREFIX).apply(conn, stream, NOW)
    with writing(engine) as conn:
        Recorder(PREFIX).apply(conn, [Message(stream[1].topic, json.dumps(altered).encode())], NOW)
    assert stored(engine) == 2
    assert counted(engine) == {"untrusted": 1}
    with engine.connect() as conn:
        kinds = conn.execute(select(exceptions.c.type)).scalars().all()
    assert kinds == ["untrusted_source"]


def test_an_identical_redelivery_is_no_conflict(engine: Engine) -> None:
    cart = SimAppliance("site", "WOW-1")
    enrolled(engine, cart)
    stream = made(cart, 3, T0)
    with writing(engine) as conn:
        Recorder(PREFIX).apply(conn, stream + stream, NOW)
    with writing(engine) as conn:
        Recorder(PREFIX).apply(conn, stream, NOW)
    assert stored(engine) == 3 and counted(engine) == {}


def test_custody_follows_seq_when_the_clock_steps_back_and_who_says_it_rests_on_skew(
    tmp_path: Path, cli: CliRunner, engine: Engine, database: str
) -> None:
    """A checkout stamped an hour ahead, then the clock stepped back and the checkin stamped
    before it: by time, `who` would name the person who checked the cart in; by seq, nobody."""
    appliance = SimAppliance("site", "WOW-1")
    enrolled(engine, appliance)
    checkout = made(appliance, 1, T0 + 3600)
    checkin = made(appliance, 1, T0 + 60)
    with writing(engine) as conn:
        Recorder(PREFIX).apply(conn, checkout, T0 + 10)
    with writing(engine) as conn:
        Recorder(PREFIX).apply(conn, checkin, T0 + 70)
    with engine.connect() as conn:
        skews = conn.execute(select(exceptions.c.detail).where(exceptions.c.type == "clock_skew")).scalars().all()
    assert len(skews) == 1 and "ahead" in skews[0], skews
    config = ledger_config(tmp_path, database, 1883)
    asked = cli("ledger", "who", "WOW-1", "--at", _rfc3339(T0 + 7200), "--format", "json", "-c", config)
    body = json.loads(asked.stdout)
    assert body["staff_id"] is None and body["clock_skew"] is True
    text = cli("ledger", "who", "WOW-1", "--at", _rfc3339(T0 + 7200), "-c", config).stdout
    assert "nobody held it" in text and "clock that was off" in text


def test_time_running_backwards_within_a_source_opens_clock_skew(engine: Engine) -> None:
    appliance = SimAppliance("site", "WOW-1")
    enrolled(engine, appliance)
    stream = made(appliance, 2, T0) + made(appliance, 1, T0 - 100)
    with writing(engine) as conn:
        Recorder(PREFIX).apply(conn, stream, T0 + 5)
    with engine.connect() as conn:
        skew = conn.execute(select(exceptions).where(exceptions.c.type == "clock_skew")).one()
        flagged = conn.execute(select(events.c.seq).where(events.c.clock_skew_s.is_not(None))).scalars().all()
    assert skew.device_id == "WOW-1" and "before seq 2" in skew.detail and "101 s" in skew.detail
    assert flagged == [3]


def test_a_clock_within_the_bound_opens_nothing(engine: Engine) -> None:
    cart = SimAppliance("site", "WOW-1")
    enrolled(engine, cart)
    with writing(engine) as conn:
        Recorder(PREFIX, max_clock_skew_s=300).apply(conn, made(cart, 3, T0), T0 + 299)
    with engine.connect() as conn:
        assert not conn.execute(select(exceptions)).all()


def _rfc3339(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


REFUSE_BY_TRIGGER = {
    "sqlite": [
        "CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.staff_id = 'refused-by-trigger' "
        "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN IF NEW.staff_id = 'refused-by-trigger' "
        "THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER refuse BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse()",
    ],
}
"""A rule of the database that the ledger's checks do not know: the case of a batch that passed
every check and that the database still refuses."""


def test_poison_live_and_retained_and_a_message_the_database_refuses_stop_nothing_across_a_restart(
    tmp_path: Path, engine: Engine, database: str
) -> None:
    with engine.begin() as conn:
        for statement in REFUSE_BY_TRIGGER[engine.dialect.name]:
            conn.exec_driver_sql(statement)
    cart, broken = SimAppliance("site", "WOW-1"), SimAppliance("site", "WOW-2")
    enrolled(engine, cart, broken)
    retained_state = {"state": "available", "staff_id": None, "session_id": None, "since": None}
    with Broker(tmp_path / "broker") as broker:
        publish(broker.port, [(f"{PREFIX}/site/{'D' * 300}/state", json.dumps(retained_state).encode(), True)])
        ledger = Ledger(ledger_config(tmp_path, database, broker.port), tmp_path / "ledger.log")
        ledger.start()
        refused_by_db = event(broken, _set("data.staff_id", "refused-by-trigger"), time.time(), signed_again=True)
        live = [
            *made(cart, 3, time.time()),
            event(SimAppliance("site", "WOW-3"), _set("data.seq", 2**63), time.time()),
            refused_by_db,
            event(SimAppliance("site", "WOW-4"), _set("id", "x" * 65), time.time()),
            *made(cart, 3, time.time()),
        ]
        publish(broker.port, [(message.topic, message.payload, False) for message in live])
        assert wait_for(lambda: stored(engine) >= 6), stored(engine)
        assert wait_for(lambda: counted(engine).get("database_refused") == 1), counted(engine)
        assert ledger.running
        ledger.kill(signal.SIGTERM)
        ledger.start()
        publish(broker.port, [(message.topic, message.payload, False) for message in made(cart, 2, time.time())])
        assert wait_for(lambda: stored(engine) >= 8), stored(engine)
        assert wait_for(lambda: counted(engine).get("too_long") == 3), counted(engine)
        assert ledger.running
        ledger.kill(signal.SIGTERM)
    assert stored(engine) == 8
    assert counted(engine) == {"too_long": 3, "out_of_range": 1, "database_refused": 1}, (
        "the retained state on a device id too long twice (once per start), the long id once, seq 2^63 once"
    )
    with engine.connect() as conn:
        kept = conn.execute(select(set_aside.c.reason, set_aside.c.topic, set_aside.c.payload)).one()
    assert kept.reason == "database_refused" and bytes(kept.payload) == refused_by_db.payload
    assert bytes(kept.topic).decode() == refused_by_db.topic
    log = ledger.log.read_text()
    assert "Traceback" not in log and "set aside a message" in log and "events.seq is 9223372036854775808" in log


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_four_ledgers_started_at_once_on_a_new_database_all_start(tmp_path: Path, kind: str) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}" if kind == "sqlite" else create_database()
    try:
        config = ledger_config(tmp_path, url, 1883)
        command = [sys.executable, "-m", "handoff", "ledger", "exceptions", "-c", str(config)]
        started = [
            subprocess.Popen(command, env=handoff_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(4)
        ]
        results = [(process.wait(120), process.stderr.read() if process.stderr else "") for process in started]
        assert all(code == 0 for code, _ in results), results
        if kind == "sqlite":
            assert stat.S_IMODE(os.stat(tmp_path / "new.db").st_mode) == 0o600
    finally:
        if kind == "postgresql":
            drop_database(url)


def test_the_ledger_on_a_3_1_1_only_broker_keeps_its_session_and_stores_every_event(
    tmp_path: Path, engine: Engine, database: str
) -> None:
    """amqtt speaks MQTT 3.1.1 only: the ledger with `protocol = "3.1.1"` subscribes with a
    persistent session (clean_session false), so what is published while it is down is
    delivered when it is back."""
    cart = SimAppliance("site", "WOW-1")
    enrolled(engine, cart)
    secret = tmp_path / "mqtt-password"
    secret.write_text("unchecked\n")
    secret.chmod(0o600)
    with AmqttBroker(tmp_path / "amqtt", anonymous=False) as broker:
        config = ledger_config(
            tmp_path, database, broker.port, protocol="3.1.1", username="ledger", password_file=str(secret)
        )
        ledger = Ledger(config, tmp_path / "ledger.log")
        ledger.start()
        publish(broker.port, _with_states(cart, 10), protocol="3.1.1", username="cart")
        assert wait_for(lambda: stored(engine) >= 10), stored(engine)
        ledger.kill(signal.SIGTERM)
        publish(broker.port, _with_states(cart, 10), protocol="3.1.1", username="cart")
        ledger.start()
        assert wait_for(lambda: stored(engine) >= 20), stored(engine)
        ledger.kill(signal.SIGTERM)
    assert stored(engine) == 20
    assert "(session resumed)" in ledger.log.read_text()
    with engine.connect() as conn:
        assert conn.execute(select(devices.c.state)).scalar_one() == "available"
        assert not conn.execute(select(exceptions).where(exceptions.c.type == "seq_gap")).all()


def _with_states(cart: SimAppliance, count: int) -> list[tuple[str, bytes, bool]]:
    out = []
    for message in made(cart, count, time.time() + cart.seq):
        out += [(message.topic, message.payload, False), (f"{cart.base}/state", cart.state(time.time()), True)]
    return out


def test_a_shared_group_with_mqtt_3_1_1_is_refused_in_one_line(tmp_path: Path, cli: CliRunner) -> None:
    config = ledger_config(tmp_path, f"sqlite:///{tmp_path / 'l.db'}", 1883, protocol="3.1.1", shared_group="ledger")
    refused = cli("ledger", "run", "-c", config)
    assert refused.returncode == 2
    assert len(refused.stderr.strip().splitlines()) == 1 and "mqtt.shared_group" in refused.stderr, refused.stderr


def test_a_missing_audit_key_file_is_one_line_before_the_session_or_the_database_starts(
    tmp_path: Path, cli: CliRunner
) -> None:
    """`ledger run` starts its MQTT session before it loads the database layer; the key files
    its config names are loaded before either, so a bad one is the only line, and no database
    file is made."""
    with Broker(tmp_path / "broker") as broker:
        missing = tmp_path / "gone.pub"
        database = tmp_path / "l.db"
        config = ledger_config(tmp_path, f"sqlite:///{database}", broker.port, ledger={"audit_keys": str(missing)})
        refused = cli("ledger", "run", "-c", config)
    assert refused.returncode == 2
    [line] = refused.stderr.strip().splitlines()
    assert "ledger.audit_keys" in line and str(missing) in line, line
    assert not database.exists()


def test_csv_cells_are_guarded_and_text_output_shows_control_characters_escaped(
    tmp_path: Path, cli: CliRunner, engine: Engine, database: str
) -> None:
    """Staff ids and details come from messages on the broker: a formula for a spreadsheet, an
    escape sequence for a terminal, a carriage return printing another name over this one."""
    cart, escaping = SimAppliance("site", "WOW-1"), SimAppliance("site", "\x1b[2J")
    enrolled(engine, cart, escaping)
    cart.staff = iter(['=HYPERLINK("http://x")', "\x1b]0;owned\x07\x1b[2Jana\rbo"])
    with writing(engine) as conn:
        Recorder(PREFIX).apply(conn, made(cart, 3, T0), T0 + 5)
    with writing(engine) as conn:
        ahead = made(escaping, 1, T0 + 3600)
        Recorder(PREFIX).apply(conn, ahead, T0 + 5)
    config = ledger_config(tmp_path, database, 1883)
    csv_out = cli("ledger", "history", "--device", "WOW-1", "--format", "csv", "-c", config).stdout
    assert "'=HYPERLINK" in csv_out and "\n=HYPERLINK" not in csv_out and ",=" not in csv_out
    table = cli("ledger", "history", "--device", "WOW-1", "-c", config).stdout
    assert "\x1b" not in table and "\r" not in table and "\\x1b]0;owned\\x07\\x1b[2Jana\\x0dbo" in table
    listed = cli("ledger", "exceptions", "-c", config).stdout
    assert "\x1b" not in listed and "\\x1b[2J" in listed
    as_json = json.loads(cli("ledger", "exceptions", "--format", "json", "-c", config).stdout)
    assert any(row["device"] == "\x1b[2J" for row in as_json), "JSON keeps the value as it is"


def test_postgresql_stopped_mid_ingest_and_while_idle_is_waited_out(tmp_path: Path, cli: CliRunner) -> None:
    """A cluster of the test's own, stopped for 30 s while events flow, then again while
    nothing does: the ledger keeps running, says so once each way, and stores every event."""
    with Cluster() as cluster, Broker(tmp_path / "broker") as broker:
        url = cluster.url
        engine = engine_for(url)
        keys = tmp_path / "keys"
        enrolled_fleet(engine, keys, 4)
        config = ledger_config(tmp_path, url, broker.port)
        ledger = Ledger(config, tmp_path / "ledger.log")
        ledger.start()
        fleet = sim_fleet(broker.port, rate=50, events=2500, keys=keys)
        assert wait_for(lambda: stored(engine) > 200), stored(engine)
        engine.dispose()
        cluster.stop()
        assert wait_for(lambda: "PostgreSQL unreachable since" in ledger.log.read_text())
        time.sleep(30)  # the outage itself: how long the database stays away is the case under test
        assert ledger.running
        cluster.start()
        assert fleet.wait(120) == 0
        assert wait_for(lambda: stored(engine) >= 2500, 120), stored(engine)
        status = cli("ledger", "status", "-c", config)
        assert status.returncode == 0 and "broker connected" in status.stdout, status.stdout + status.stderr
        engine.dispose()
        cluster.stop()
        assert wait_for(lambda: ledger.log.read_text().count("PostgreSQL unreachable since") == 2)
        down = cli("ledger", "status", "-c", config)
        assert down.returncode == 1 and "database: unreachable" in down.stdout
        cluster.start()
        assert wait_for(lambda: ledger.log.read_text().count("PostgreSQL reachable again after") == 2)
        assert sim_fleet(broker.port, rate=200, events=200, keys=keys).wait(60) == 0
        assert wait_for(lambda: stored(engine) >= 2700, 60), stored(engine)
        assert ledger.running
        ledger.kill(signal.SIGTERM)
        assert stored(engine) == 2700
        engine.dispose()
    log = ledger.log.read_text()
    assert "Traceback" not in log
    assert log.count("PostgreSQL unreachable since") == 2, log


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Any:
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    made_it = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], check=False)
    if made_it.returncode != 0:
        pytest.skip("mount -t tmpfs is not permitted here")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_sqlite_on_a_full_disk_is_waited_out_and_loses_nothing(tmp_path: Path, small_tmpfs: Path) -> None:
    database = f"sqlite:///{small_tmpfs / 'ledger.db'}"
    engine = engine_for(database)
    keys = tmp_path / "keys"
    enrolled_fleet(engine, keys, 4)
    filler = small_tmpfs / "filler"
    with Broker(tmp_path / "broker") as broker:
        ledger = Ledger(ledger_config(tmp_path, database, broker.port), tmp_path / "ledger.log")
        ledger.start()
        assert sim_fleet(broker.port, rate=500, events=200, keys=keys).wait(60) == 0
        assert wait_for(lambda: stored(engine) >= 200), stored(engine)
        free = shutil.disk_usage(small_tmpfs).free
        filler.write_bytes(b"\0" * (free - 16 * 1024))
        fleet = sim_fleet(broker.port, rate=500, events=1500, keys=keys)
        assert wait_for(lambda: "SQLite unreachable since" in ledger.log.read_text(), 60)
        assert ledger.running
        filler.unlink()
        assert fleet.wait(60) == 0
        assert wait_for(lambda: stored(engine) >= 1700, 60), stored(engine)
        assert ledger.running
        ledger.kill(signal.SIGTERM)
    assert stored(engine) == 1700
    engine.dispose()
    log = ledger.log.read_text()
    assert "Traceback" not in log and "database or disk is full" in log and "SQLite reachable again" in log


def test_doctor_says_what_mosquitto_supports_and_warns_of_its_queue_limit(
    tmp_path: Path, cli: CliRunner, database: str
) -> None:
    with Broker(tmp_path / "broker") as broker:
        config = ledger_config(tmp_path, database, broker.port, shared_group="ledger")
        result = cli("ledger", "doctor", "-c", config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "retained to a wildcard: yes" in result.stdout and "$share: delivers" in result.stdout
    assert "WARN  broker queue" in result.stdout and "max_queued_messages" in result.stdout
    assert "PASS  trust: only messages signed under a key enrolled" in result.stdout


def test_doctor_says_the_lab_benchs_switch_is_on(tmp_path: Path, cli: CliRunner, database: str) -> None:
    with Broker(tmp_path / "broker") as broker:
        config = ledger_config(tmp_path, database, broker.port, ledger={"allow_untrusted": True})
        result = cli("ledger", "doctor", "-c", config)
    assert result.returncode == 0, result.stdout + result.stderr
    (line,) = [line for line in result.stdout.splitlines() if "trust" in line]
    assert line.startswith("WARN") and "allow_untrusted is on" in line and "is evidence" in line, line


def test_doctor_on_a_3_1_1_only_broker_with_mqtt_5_fails_in_one_line(
    tmp_path: Path, cli: CliRunner, database: str
) -> None:
    with AmqttBroker(tmp_path / "amqtt") as broker:
        config = ledger_config(tmp_path, database, broker.port)
        result = cli("ledger", "doctor", "-c", config)
    assert result.returncode == 1
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 1 and "MQTT 5" in failed[0], result.stdout


def test_the_ledger_on_nats_with_mqtt_3_1_1_stores_every_event_across_a_restart(
    tmp_path: Path, cli: CliRunner, engine: Engine, database: str
) -> None:
    """NATS's MQTT listener speaks 3.1.1 only and keeps MQTT sessions in JetStream."""
    if not NatsBroker.installed():
        pytest.skip("nats-server is not installed")
    cart = SimAppliance("site", "WOW-1")
    enrolled(engine, cart)
    with NatsBroker(tmp_path / "nats") as broker:
        config = ledger_config(tmp_path, database, broker.port, protocol="3.1.1")
        ledger = Ledger(config, tmp_path / "ledger.log")
        ledger.start()
        publish(broker.port, _with_states(cart, 17), protocol="3.1.1")
        assert wait_for(lambda: stored(engine) >= 17), stored(engine)
        ledger.kill(signal.SIGTERM)
        publish(broker.port, _with_states(cart, 5), protocol="3.1.1")
        ledger.start()
        assert wait_for(lambda: stored(engine) >= 22), stored(engine)
        ledger.kill(signal.SIGTERM)
        doctor = cli("ledger", "doctor", "-c", config)
    assert stored(engine) == 22
    assert "(session resumed)" in ledger.log.read_text()
    assert doctor.returncode == 0 and "retained to a wildcard: yes" in doctor.stdout, doctor.stdout


def test_the_ledgers_mqtt_process_killed_mid_backlog_is_replaced_and_nothing_is_lost(
    tmp_path: Path, engine: Engine, database: str
) -> None:
    """The MQTT session runs in a process of its own beside `handoff ledger run`'s. Killed while
    a backlog is taken, the ledger starts another and says so; what the dead one held
    unacknowledged comes again from the broker: every event stored once, no gap, no break."""
    with Broker(tmp_path / "broker", extra="max_queued_messages 0") as broker:
        ledger = Ledger(ledger_config(tmp_path, database, broker.port), tmp_path / "ledger.log")
        queue_backlog(ledger, engine, broker.port, tmp_path / "keys", 6_000)
        ledger.start()
        first = ledger.session_process()
        assert wait_for(lambda: stored(engine) > 0), ledger.log.read_text()
        os.kill(first, signal.SIGKILL)
        assert stored(engine) < 6_000, "killed mid-backlog"
        assert wait_for(lambda: ledger.log.read_text().count("connected to") == 3, 60), ledger.log.read_text()
        assert ledger.session_process() != first
        assert wait_for(lambda: stored(engine) >= 6_000, 120), stored(engine)
        ledger.kill(signal.SIGTERM)
    log = ledger.log.read_text()
    assert "the ledger's MQTT process ended (exit status -9); starting another" in log, log
    assert "Traceback" not in log, log
    assert stored(engine) == 6_000
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(events).where(events.c.chain_ok.is_(False))).scalar() == 0
        opened = conn.execute(select(exceptions.c.type).where(exceptions.c.closed.is_(None))).scalars().all()
    assert not set(opened) & {"seq_gap", "chain_break", "duplicate_conflict", "untrusted_source"}, opened


def test_a_publish_to_a_dead_mqtt_process_answers_none_and_the_next_take_starts_another(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The ledger publishes its commands inside a database transaction, which a dead MQTT process
    must not hold through a restart: the publish answers None (the command stays due), and the
    next take, outside any transaction, starts another process, whose session takes what comes."""
    with Broker(tmp_path / "broker") as broker:
        mqtt = load_ledger_config(ledger_config(tmp_path, f"sqlite:///{tmp_path / 'ledger.db'}", broker.port)).mqtt
        stopping = threading.Event()
        receiver = Receiver(mqtt, [f"{PREFIX}/+/+/state"], 100, stopping)

        def linked() -> bool:
            """A take brings the child's news of its connection."""
            return receiver.take(1, 0.1, 0.0).connected

        receiver.start()
        try:
            assert wait_for(linked)
            [first] = spawned_children(os.getpid())
            os.kill(first, signal.SIGKILL)
            assert wait_for(lambda: spawned_children(os.getpid()) == []), "a killed child is a zombie: no cmdline"
            assert receiver.publish(f"{PREFIX}/site/WOW-1/cmd/force_logoff", b"{}") is None
            assert "MQTT process ended" not in caplog.text, "no restart inside the publish"
            assert receiver.take(1, 0.0, 0.0).life == 2
            assert "the ledger's MQTT process ended (exit status -9); starting another" in caplog.text
            started = wait_for(lambda: spawned_children(os.getpid()), 30)
            assert started and started != [first], "a new child, once exec'd (before, it has pytest's cmdline)"
            assert wait_for(linked)
            publish(broker.port, [(f"{PREFIX}/site/WOW-1/state", b"{}", False)])
            taken: list[str] = []
            assert wait_for(lambda: bool(taken.extend(receiver.take(10, 0.1, 0.0).received.topics) or taken), 30)
            assert taken == [f"{PREFIX}/site/WOW-1/state"]
            assert receiver.publish(f"{PREFIX}/site/WOW-1/cmd/force_logoff", b"{}") is not None
        finally:
            stopping.set()
            receiver.stop()


def test_a_broker_unreachable_at_start_is_said_at_once_and_waited_for(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "broker")
    log = tmp_path / "ledger.log"
    config = ledger_config(tmp_path, sqlite_ledger(tmp_path / "l.db"), broker.port)
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "handoff", "ledger", "run", "-c", str(config)], env=handoff_env(), stderr=out
        )
    try:
        assert wait_for(lambda: f"broker 127.0.0.1:{broker.port} unreachable since" in log.read_text(), 15)
        with broker:
            assert wait_for(lambda: "reachable again after" in log.read_text(), 60), log.read_text()
            assert "connected to" in log.read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    assert "Traceback" not in log.read_text()
