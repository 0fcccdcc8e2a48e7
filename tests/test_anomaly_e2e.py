"""The automated response end to end: `handoff ledger run` with concurrent_use answered, a real
`handoff run` holding the older session, a simulated appliance where the same badge checks out
next. The ledger's signed `force_logoff` reaches the real appliance, which ends the session
(`forced_logoff`) and answers; the answer shows on the exception. A forged checkout first
changes nothing. And `handoff sim fleet`, whose carts hand the same staff ids round, opens and
closes concurrent_use as they do."""

from __future__ import annotations

import itertools
import json
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from handoff.audit.keys import private_pem
from handoff.ledger import accounts
from handoff.ledger.anomalies import Rules
from handoff.ledger.config import load_ledger_config
from handoff.ledger.console.app import create_app
from handoff.ledger.database import engine_for, write_first, writing
from handoff.ledger.ingest import Message, Recorder
from handoff.ledger.schema import devices, exceptions, responses
from handoff.sim.fleet import SimAppliance
from tests.asyncapi_schemas import validator
from tests.kit.appliance import ANA, Running
from tests.kit.broker import Broker
from tests.kit.cli import CliRunner
from tests.kit.config import DEVICE, SITE, Layout
from tests.kit.console import Clock, log_in, words
from tests.kit.ledger import (
    Ledger,
    audit_key,
    counted,
    enrol_key,
    enrolled,
    enrolled_fleet,
    ledger_config,
    sim_fleet,
    sqlite_ledger,
)
from tests.kit.publish import publish
from tests.kit.wait import wait_for

RESPOND = '\n[ledger.anomalies]\nconcurrent_use = true\nrespond = ["concurrent_use"]\n'


def anomaly_rows(engine: Engine) -> list[tuple[str, str, str, bool]]:
    with engine.connect() as conn:
        rows = conn.execute(select(exceptions).where(exceptions.c.type == "concurrent_use").order_by(exceptions.c.id))
        return [(row.key, row.device_id, row.detail, row.closed is None) for row in rows]


def answers(engine: Engine) -> list[tuple[str, str | None, str | None]]:
    with engine.connect() as conn:
        return [(row.device_id, row.result, row.outcome) for row in conn.execute(select(responses))]


@dataclass
class Scene:
    """A real appliance (`cart`) and a running ledger that answers concurrent_use, on one broker,
    and a simulated appliance elsewhere whose key the ledger believes."""

    broker: Broker
    cart: Running
    engine: Engine
    elsewhere: SimAppliance
    config: Path


@contextmanager
def responding(appliance: Layout, cli: CliRunner, tmp_path: Path, database: str) -> Iterator[Scene]:
    key_file, key = audit_key(tmp_path)
    engine = engine_for(database)
    enrol_key(engine, DEVICE, key.public_key())
    elsewhere = SimAppliance(SITE, "WOW-SIM", staff=itertools.repeat("ana"))
    enrolled(engine, elsewhere)
    with Broker(tmp_path / "broker") as broker:
        cart = Running(appliance, broker, cli, {"retap_guard_s": 0}, audit={"key_file": str(key_file)})
        command_key = tmp_path / "ledger-commands.key"
        command_key.write_bytes(private_pem(cart.command_key))
        command_key.chmod(0o600)
        config = ledger_config(tmp_path, database, broker.port, ledger={"command_key_file": str(command_key)})
        config.write_text(config.read_text() + RESPOND)
        ledger = Ledger(config, tmp_path / "ledger.log")
        ledger.start()
        try:
            yield Scene(broker, cart, engine, elsewhere, config)
        finally:
            cart.stop()
            cart.events.close()
            ledger.kill(signal.SIGTERM)
            engine.dispose()


def test_the_ledger_ends_the_older_session_on_a_real_appliance_and_shows_its_answer(
    appliance: Layout, cli: CliRunner, tmp_path: Path, database: str
) -> None:
    with responding(appliance, cli, tmp_path, database) as scene:
        scene.cart.tap(ANA)
        assert scene.cart.event_types(1) == [("org.handoff.checkout", "ana", None)]
        forger = SimAppliance(SITE, "WOW-FORGED", staff=itertools.repeat("ana"))
        publish(scene.broker.port, [(*forger.emit("checkout", time.time(), "ana"), False)])
        assert wait_for(lambda: counted(scene.engine).get("untrusted", 0) >= 1)
        assert anomaly_rows(scene.engine) == [] and answers(scene.engine) == []

        publish(scene.broker.port, [(*scene.elsewhere.emit("checkout", time.time(), "ana"), False)])
        ended = scene.cart.events.wait_for_count(lambda m: m.topic.endswith("/events/forced_logoff"), 1)[-1].json()
        assert ended["data"]["staff_id"] == "ana"
        [command] = [m.json() for m in scene.cart.events.snapshot() if m.topic.endswith("/cmd/force_logoff")]
        validator("command").validate(command)
        assert command["by"] == "handoff-ledger"
        [(device, result, outcome)] = wait_for(lambda: [row for row in answers(scene.engine) if row[1]])
        assert (device, outcome) == (DEVICE, None)
        assert json.loads(str(result))["ok"] is True
        [(staff_id, where, detail, still_open)] = wait_for(
            lambda: [row for row in anomaly_rows(scene.engine) if not row[3]]
        )
        assert (staff_id, where, still_open) == ("ana", DEVICE, False)
        assert f"{DEVICE} answered" in detail and ": ok: done" in detail, detail
        shown = console_row(scene.config, scene.engine, "concurrent_use")
        assert f"Automated force logoff to {DEVICE}: sent " in shown, shown
        assert "; the appliance answered ok: done" in shown, shown


def console_row(config: Path, engine: Engine, kind: str) -> str:
    """The text of the console's exceptions page for `kind`, as a viewer reads it."""
    with write_first(engine) as conn:
        accounts.add(conn, time.time(), "test", "ward-clerk", "viewer", PasswordHasher().hash("clerk password 1"))
    app = create_app(load_ledger_config(config), engine, Clock())
    with TestClient(app, base_url="https://testserver") as client:
        log_in(client, "ward-clerk", "clerk password 1")
        page = client.get(f"/exceptions?type={kind}")
        assert page.status_code == 200
        return words(page)


def test_a_simulated_fleet_handing_the_same_staff_ids_round_opens_and_closes_concurrent_use(
    tmp_path: Path, database: str
) -> None:
    engine = engine_for(database)
    keys = tmp_path / "keys"
    enrolled_fleet(engine, keys, 2)
    with Broker(tmp_path / "broker") as broker:
        config = ledger_config(tmp_path, database, broker.port)
        config.write_text(config.read_text() + "\n[ledger.anomalies]\nconcurrent_use = true\n")
        ledger = Ledger(config, tmp_path / "ledger.log")
        ledger.start()
        try:
            fleet = sim_fleet(broker.port, rate=20, events=8, appliances=2, keys=keys)
            assert fleet.wait(60) == 0
            rows = wait_for(
                lambda: [row for row in anomaly_rows(engine) if not row[3]] if len(anomaly_rows(engine)) >= 2 else []
            )
            assert [(key, device) for key, device, _, _ in rows] == [
                ("staff-000", "SIM-00000"),
                ("staff-001", "SIM-00000"),
            ]
        finally:
            ledger.kill(signal.SIGTERM)
            engine.dispose()


def test_a_command_queued_while_the_broker_is_down_is_sent_when_it_is_back(
    appliance: Layout, cli: CliRunner, tmp_path: Path
) -> None:
    """The anomaly is committed (here by a second ledger writing to the same database) while the
    broker is down: the running ledger holds the command until the broker is back, then the
    appliance ends the session and its answer lands on the exception."""
    with responding(appliance, cli, tmp_path, sqlite_ledger(tmp_path / "ledger.db")) as scene:
        scene.cart.tap(ANA)
        assert wait_for(lambda: holder_of(scene.engine, DEVICE) == ("ana", "in_use"))
        scene.broker.stop()
        rules = Rules(concurrent_use=True, respond=frozenset({"concurrent_use"}))
        with writing(scene.engine) as conn:
            checkout = Message(*scene.elsewhere.emit("checkout", time.time(), "ana"))
            Recorder("handoff/v1", anomalies=rules).apply(conn, [checkout], time.time())
        assert answers(scene.engine) == [(DEVICE, None, None)]
        scene.broker.start()
        assert wait_for(lambda: holder_of(scene.engine, DEVICE) == ("ana", "locked"), 60)
        [(device, result, _)] = wait_for(lambda: [row for row in answers(scene.engine) if row[1]], 60)
        assert device == DEVICE and json.loads(str(result))["ok"] is True


def test_a_command_the_broker_refuses_is_marked_refused_not_sent(tmp_path: Path) -> None:
    """A broker whose ACL does not let the ledger publish commands answers its PUBLISH with a
    negative PUBACK (MQTT 5): the exception says so, rather than that the command went out."""
    database = sqlite_ledger(tmp_path / "ledger.db")
    engine = engine_for(database)
    first, second = (SimAppliance(SITE, name, staff=itertools.repeat("ana")) for name in ("WOW-A", "WOW-B"))
    enrolled(engine, first, second)
    acl = tmp_path / "acl"
    acl.write_text("topic read handoff/v1/#\ntopic write handoff/v1/+/+/events/#\n")
    command_key, _ = audit_key(tmp_path)
    with Broker(tmp_path / "broker", extra=f"acl_file {acl}") as broker:
        config = ledger_config(tmp_path, database, broker.port, ledger={"command_key_file": str(command_key)})
        config.write_text(config.read_text() + RESPOND)
        ledger = Ledger(config, tmp_path / "ledger.log")
        ledger.start()
        try:
            publish(broker.port, [(*first.emit("checkout", time.time(), "ana"), False)])
            assert wait_for(lambda: holder_of(engine, "WOW-A") == ("ana", "in_use"))
            publish(broker.port, [(*second.emit("checkout", time.time(), "ana"), False)])
            [(device, result, outcome)] = wait_for(lambda: [row for row in answers(engine) if row[2]])
            assert (device, result) == ("WOW-A", None)
            assert str(outcome).startswith("not sent: the broker refused it ("), outcome
            [(_, _, detail, _)] = anomaly_rows(engine)
            assert "sent to" not in detail and "the broker refused it" in detail, detail
        finally:
            ledger.kill(signal.SIGTERM)
            engine.dispose()


def holder_of(engine: Engine, device_id: str) -> tuple[str | None, str | None]:
    with engine.connect() as conn:
        row = conn.execute(select(devices.c.staff_id, devices.c.state).where(devices.c.device_id == device_id)).first()
        return (row.staff_id, row.state) if row is not None else (None, None)
