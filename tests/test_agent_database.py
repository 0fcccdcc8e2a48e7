"""The agent's own database (docs/agent.md): its journal and its outbox, nothing of the
appliance's; its errors name the agent's keys; an older agent's database is taken over whole."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from handoff import db
from handoff.agent import database
from handoff.agent.journal import Journal
from handoff.audit.keys import private_pem, public_pem
from handoff.directory import Badge, Directory
from handoff.errors import ConfigError
from handoff.instance_lock import hold_instance_lock
from handoff.outbox import Outbox
from handoff.provision.render import render_toml
from tests.kit.cli import CliRunner
from tests.kit.config import DEVICE, SITE

APPLIANCE_TABLES = {"badges", "appliance_state", "checkpoints", "seen_commands"}
EVENT = {"id": "ev-1", "type": "org.handoff.forced_logoff", "subject": DEVICE, "data": {"device_id": DEVICE}}
RECEIPT = {"id": "rc-1", "data": {"for": "ev-1", "result": "done"}}


def tables(conn: sqlite3.Connection) -> set[str]:
    return {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}


def test_the_agents_database_holds_its_journal_and_outbox_and_nothing_of_the_appliances(tmp_path: Path) -> None:
    conn = database.connect_checked(tmp_path)
    assert tables(conn) == {"agent_events", "outbox", "delivery", "unsent", "broker_link", "meta", "sqlite_sequence"}
    assert (tmp_path / "agent.db").exists() and not (tmp_path / db.DB_NAME).exists()


def test_the_appliances_database_holds_no_agent_journal(tmp_path: Path) -> None:
    names = tables(db.connect(tmp_path))
    assert names >= APPLIANCE_TABLES
    assert "agent_events" not in names


def test_a_receipt_commits_with_its_event_and_waits_in_the_outbox_until_acknowledged(tmp_path: Path) -> None:
    conn = database.connect_checked(tmp_path)
    journal, outbox = Journal(conn, clock=lambda: 1_000.0), Outbox(conn, clock=lambda: 1_000.0)
    journal.note(EVENT)
    journal.start("ev-1")
    journal.finish("ev-1", RECEIPT)
    [waiting] = outbox.unsent()
    assert (waiting.id, waiting.topic) == ("rc-1", "receipts")
    outbox.mark_acked([waiting.seq])
    assert outbox.unsent() == [] and journal.due() is None


def test_a_purged_queue_never_hands_out_a_number_below_its_watermark(tmp_path: Path) -> None:
    """Were numbers reused once every row is purged, a new receipt would sit under the
    acknowledged watermark and never be sent."""
    now = [1_000.0]
    conn = database.connect_checked(tmp_path)
    journal, outbox = Journal(conn, clock=lambda: now[0]), Outbox(conn, clock=lambda: now[0])
    for number in range(3):
        journal.queue("cmd/activity", f"act-{number}", b"{}")
    outbox.mark_acked([event.seq for event in outbox.unsent()])
    now[0] += 40 * 86400
    assert outbox.purge(30) == 3
    journal.queue("cmd/activity", "act-late", b"{}")
    [late] = outbox.unsent()
    assert (late.id, late.seq) == ("act-late", 4)


def legacy_agent_database(data_dir: Path) -> None:
    """What an agent made before it had its own schema: the appliance's database plus its journal,
    with one receipt acknowledged and one not."""
    conn = db.connect(data_dir)
    conn.executescript(
        """
        CREATE TABLE agent_events (
            id TEXT PRIMARY KEY, body TEXT NOT NULL, received REAL NOT NULL, state TEXT NOT NULL,
            receipt_id TEXT, receipt BLOB, resend INTEGER NOT NULL DEFAULT 0
        );
        INSERT INTO agent_events VALUES ('ev-0', '{}', 1, 'done', 'rc-0', x'7b7d', 0);
        INSERT INTO agent_events VALUES ('ev-1', '{}', 2, 'done', 'rc-1', x'7b7d', 0);
        INSERT INTO appliance_state (id, body, last_seq) VALUES (1, 'null', 2);
        INSERT INTO outbox (seq, id, topic, payload, created, acked) VALUES (1, 'rc-0', 'receipts', x'7b7d', 1, 5);
        INSERT INTO outbox (seq, id, topic, payload, created) VALUES (2, 'rc-1', 'receipts', x'7b7d', 2);
        """
    )
    conn.close()


def test_an_older_agents_journal_and_unsent_receipts_are_taken_over_once(tmp_path: Path) -> None:
    legacy_agent_database(tmp_path)
    conn = database.connect_checked(tmp_path)
    assert {row[0] for row in conn.execute("SELECT id FROM agent_events")} == {"ev-0", "ev-1"}
    assert [event.id for event in Outbox(conn).unsent()] == ["rc-1"]
    assert not (tmp_path / db.DB_NAME).exists() and (tmp_path / f"{db.DB_NAME}.adopted").exists()
    conn.close()
    again = database.connect_checked(tmp_path)
    assert [event.id for event in Outbox(again).unsent()] == ["rc-1"]


def test_an_appliances_database_in_the_agents_directory_is_refused_and_left_alone(tmp_path: Path) -> None:
    """An agent pointed at an appliance's data directory must not take (and rename) its database."""
    Directory(db.connect(tmp_path)).replace([Badge("ab" * 32, "ana", "Ana", "RN")])
    before = (tmp_path / db.DB_NAME).read_bytes()
    with pytest.raises(ConfigError) as refused:
        database.connect_checked(tmp_path)
    assert refused.value.key == "agent.data_dir" and "holds an appliance's database" in str(refused.value)
    assert (tmp_path / db.DB_NAME).read_bytes() == before


def test_a_damaged_agent_database_is_named_with_the_agents_own_advice(tmp_path: Path) -> None:
    (tmp_path / "agent.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(db.CorruptDatabase) as refused:
        database.connect_checked(tmp_path)
    assert "agent.db" in str(refused.value) and "badge directory" not in str(refused.value)


@pytest.fixture
def agent_config(tmp_path: Path) -> Path:
    key = tmp_path / "agent.key"
    key.write_bytes(private_pem(Ed25519PrivateKey.generate()))
    key.chmod(0o600)
    appliance_pub = tmp_path / "appliance.pub"
    appliance_pub.write_bytes(public_pem(Ed25519PrivateKey.generate()))
    identity = {
        "site": SITE,
        "device_id": DEVICE,
        "agent_id": "ws-1",
        "key_file": str(key),
        "appliance_key": str(appliance_pub),
        "data_dir": str(tmp_path / "d"),
    }
    config = tmp_path / "agent.toml"
    config.write_text(
        render_toml(
            {"agent": identity, "mqtt": {"url": "mqtt://127.0.0.1:9", "allow_insecure": True}},
            {"actions": [{"kind": "command", "argv": ["true"]}]},
        )
    )
    return config


def test_a_data_dir_that_is_a_file_names_agent_data_dir(tmp_path: Path, cli: CliRunner, agent_config: Path) -> None:
    (tmp_path / "d").write_text("a file where the directory should be")
    result = cli("agent", "-c", agent_config)
    assert result.returncode == 2
    assert result.stderr.startswith(f"handoff: agent.data_dir {tmp_path / 'd'} is not a directory"), result.stderr
    assert "appliance" not in result.stderr


def test_an_unreadable_key_names_agent_key_file(tmp_path: Path, cli: CliRunner, agent_config: Path) -> None:
    (tmp_path / "agent.key").unlink()
    result = cli("agent", "-c", agent_config)
    assert result.returncode == 2
    assert result.stderr.startswith(f"handoff: agent.key_file: {tmp_path / 'agent.key'} does not exist"), result.stderr


def test_a_second_agent_on_the_same_data_dir_is_refused_naming_agent_data_dir(
    tmp_path: Path, cli: CliRunner, agent_config: Path
) -> None:
    with hold_instance_lock(tmp_path / "d", "handoff agent", "agent.data_dir"):
        result = cli("agent", "-c", agent_config)
    assert result.returncode == 2
    assert "another handoff agent holds the lock" in result.stderr
    assert result.stderr.rstrip().endswith("or give this config its own agent.data_dir"), result.stderr
