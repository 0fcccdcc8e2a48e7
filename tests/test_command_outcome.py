"""Commands answered from what they did, on a real appliance and a real mosquitto.

The id is committed with the events the command causes, so "done" follows the commit, a
failed commit is answered `unavailable` and the very same command is obeyed when sent again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from handoff.db import DB_NAME
from tests.asyncapi_schemas import validator
from tests.kit.appliance import ANA, Running
from tests.kit.broker import Broker
from tests.kit.cli import CliRunner
from tests.kit.config import PREFIX, Layout

REFUSE_COMMAND_IDS = (
    "CREATE TRIGGER refuse_ids BEFORE INSERT ON seen_commands BEGIN SELECT RAISE(ABORT, 'disk refused'); END"
)
"""A commit that fails for real inside SQLite, in the middle of the command's transaction."""


@pytest.fixture
def running(appliance: Layout, cli: CliRunner, tmp_path: Path) -> Iterator[Running]:
    with Broker(tmp_path / "broker") as broker:
        app = Running(appliance, broker, cli, {"retap_guard_s": 0.5})
        yield app
        if app.process is not None:
            app.stop()
        app.events.close()


def _database(appliance: Layout) -> sqlite3.Connection:
    return sqlite3.connect(appliance.data_dir / DB_NAME, isolation_level=None)


def _forced_logoffs(running: Running) -> int:
    return sum(1 for m in running.events.snapshot() if m.topic == f"{PREFIX}/events/forced_logoff")


def test_force_logoff_with_no_session_is_nothing_to_do_and_still_not_replayable(running: Running) -> None:
    raw, answer = running.command("force_logoff")
    validator("commandResult").validate(answer)
    assert answer["ok"] is True and answer["message"] == "nothing to do: no live session", answer
    running.tap(ANA)
    running.event_types(1)
    _, again = running.command("force_logoff", raw)
    assert again["error"] == "replayed", "a replay of a no-op must not end the session that began since"
    _, obeyed = running.command("force_logoff")
    assert obeyed["ok"] is True and obeyed["message"] == "done"
    assert [kind for kind, _, _ in running.event_types(2)] == ["org.handoff.checkout", "org.handoff.forced_logoff"]


def test_a_failed_commit_is_not_done_and_the_same_command_is_obeyed_later(running: Running, appliance: Layout) -> None:
    running.tap(ANA)
    running.event_types(1)
    database = _database(appliance)
    database.execute(REFUSE_COMMAND_IDS)

    raw, failed = running.command("force_logoff")

    validator("commandResult").validate(failed)
    assert failed["ok"] is False and failed["error"] == "unavailable" and "disk refused" in failed["message"]
    outbox = database.execute("SELECT count(*) FROM outbox WHERE topic LIKE '%forced_logoff'").fetchone()[0]
    assert outbox == 0, "the event and the id are one transaction: neither may survive its failure"
    assert database.execute("SELECT count(*) FROM seen_commands").fetchone()[0] == 0
    database.execute("DROP TRIGGER refuse_ids")

    _, retried = running.command("force_logoff", raw)

    assert retried["ok"] is True and retried["message"] == "done", retried
    assert running.event_types(2)[1] == ("org.handoff.forced_logoff", "ana", "remote")
    assert _forced_logoffs(running) == 1
