"""`handoff status` and `handoff outbox` as biomed runs them, in a separate process."""

from __future__ import annotations

import json

from handoff import db
from handoff.store import Store
from tests.kit.cli import CliRunner
from tests.kit.config import Layout
from tests.kit.outbox import CONTEXT, checkout, in_use


def test_status_of_a_fresh_appliance(appliance: Layout, cli: CliRunner) -> None:
    result = cli("status", "-c", appliance.config)
    assert result.returncode == 0, result.stderr
    assert "outbox: 0 unsent" in result.stdout and "broker: never contacted" in result.stdout


def test_status_and_outbox_after_events(appliance: Layout, cli: CliRunner) -> None:
    store = Store(db.connect(appliance.data_dir))
    store.commit(in_use("alice"), [checkout("alice"), checkout("alice")], CONTEXT)
    store.mark_acked([1])
    store.record_link(False, "cannot connect: Connection refused", [{"reader": "nfc0", "ok": False}])
    status = cli("status", "-c", appliance.config)
    assert status.returncode == 0, status.stderr
    for expected in ("state: in_use", "holder: alice", "outbox: 1 unsent, oldest unsent", "broker: disconnected"):
        assert expected in status.stdout
    assert "Connection refused" in status.stdout and "reader: reader=nfc0, ok=False" in status.stdout
    listed = cli("outbox", "list", "--unsent", "-c", appliance.config)
    assert [line.split("\t")[0] for line in listed.stdout.splitlines()] == ["SEQ", "2"]
    exported = [json.loads(line) for line in cli("outbox", "export", "-c", appliance.config).stdout.splitlines()]
    assert [(e["seq"], e["acked"] is None, e["event"]["data"]["staff_id"]) for e in exported] == [
        (1, False, "alice"),
        (2, True, "alice"),
    ]


def test_status_with_bad_config_is_one_line(appliance: Layout, cli: CliRunner) -> None:
    appliance.write_config("[appliance]\nsite = 3\n")
    result = cli("status", "-c", appliance.config)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
