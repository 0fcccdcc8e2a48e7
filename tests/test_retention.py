"""Retention (`[ledger] retain_days`, docs/ledger.md): events older than the cutoff go only from
the newest signed checkpoint at or before it, per source; a source with no such checkpoint keeps
everything; what remains still passes `handoff audit verify`; and `handoff ledger run` prunes
on its own. On SQLite and PostgreSQL."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import Engine, select

from handoff.audit.keys import public_pem
from handoff.ledger.database import writing
from handoff.ledger.ingest import Message, Recorder
from handoff.ledger.retention import prune
from handoff.ledger.schema import checkpoints, events, sources
from handoff.sim.fleet import SimAppliance
from tests.kit.broker import Broker
from tests.kit.cli import CliRunner
from tests.kit.ledger import Ledger, enrolled, ledger_command, ledger_config, wait_for

DAY = 86400.0
PREFIX = "handoff/v1"


def old_trail(cart: SimAppliance, now: float, anchors: tuple[int, ...]) -> list[Message]:
    """Twelve events, event n made 13 - n days before `now`; a checkpoint after each seq in `anchors`."""
    made = []
    for n in range(1, 13):
        at = now - (13 - n) * DAY
        made.append(Message(*cart.next_event(at)))
        if n in anchors:
            made.append(Message(f"{cart.base}/checkpoint", cart.checkpoint(at)))
    return made


def kept(engine: Engine, device: str) -> list[int]:
    with engine.connect() as conn:
        query = select(events.c.seq).where(events.c.device_id == device).order_by(events.c.seq)
        return list(conn.execute(query).scalars())


def verified(engine: Engine, cart: SimAppliance, cli: CliRunner, tmp_path: Path) -> tuple[int, str]:
    """`handoff audit verify` over what the ledger still holds of the cart: its events and checkpoints."""
    with engine.connect() as conn:
        lines = list(conn.execute(select(events.c.payload).where(events.c.device_id == cart.device_id)).scalars())
        lines += conn.execute(select(checkpoints.c.payload)).scalars()
    trail, key = tmp_path / f"{cart.device_id}.jsonl", tmp_path / f"{cart.device_id}.pub"
    trail.write_text("".join(line + "\n" for line in lines))
    key.write_bytes(public_pem(cart.key.public_key()))
    result = cli("audit", "verify", str(trail), "--key", str(key))
    return result.returncode, result.stdout + result.stderr


def test_pruning_keeps_from_the_newest_checkpoint_before_the_cutoff_and_what_remains_verifies(
    engine: Engine, cli: CliRunner, tmp_path: Path
) -> None:
    now = time.time()
    anchored, bare = SimAppliance("north", "WOW-1"), SimAppliance("north", "WOW-2")
    enrolled(engine, anchored, bare)
    with writing(engine) as conn:
        Recorder(PREFIX).apply(conn, old_trail(anchored, now, (4, 7, 10)) + old_trail(bare, now, ()), now)
    assert verified(engine, anchored, cli, tmp_path)[0] == 0
    with writing(engine) as conn:
        pruned = prune(conn, now, retain_days=5)
    assert (pruned.events, pruned.sources) == (7, 1)
    assert kept(engine, "WOW-1") == [8, 9, 10, 11, 12], "seq 8 is older than the cutoff but after the anchor"
    assert kept(engine, "WOW-2") == list(range(1, 13)), "no checkpoint: everything is kept"
    with engine.connect() as conn:
        assert sorted(conn.execute(select(checkpoints.c.seq)).scalars()) == [7, 10]
        assert conn.execute(select(sources.c.first_seq).where(sources.c.device_id == "WOW-1")).scalar_one() == 8
    code, said = verified(engine, anchored, cli, tmp_path)
    assert code == 0, said
    with writing(engine) as conn:
        assert prune(conn, now, retain_days=5).events == 0, "pruning again changes nothing"
    with writing(engine) as conn:
        conn.execute(events.delete().where(events.c.device_id == "WOW-1", events.c.seq == 9))
    assert verified(engine, anchored, cli, tmp_path)[0] == 1, "the verification can fail"


def test_the_running_ledger_prunes_in_its_housekeeping(engine: Engine, database: str, tmp_path: Path) -> None:
    now = time.time()
    cart = SimAppliance("north", "WOW-1")
    enrolled(engine, cart)
    with writing(engine) as conn:
        Recorder(PREFIX).apply(conn, old_trail(cart, now, (6,)), now)
    with Broker(tmp_path / "broker") as broker:
        ledger = Ledger(ledger_config(tmp_path, database, broker.port, ledger={"retain_days": 3}), tmp_path / "l.log")
        ledger.start()
        try:
            assert wait_for(lambda: kept(engine, "WOW-1") == list(range(7, 13))), kept(engine, "WOW-1")
        finally:
            ledger.kill()
    assert "retention: pruned 6 events older than 3 days from 1 sources" in (tmp_path / "l.log").read_text()


def test_a_retention_out_of_range_is_refused_naming_the_key(tmp_path: Path) -> None:
    for days in (0, 36501, "six years"):
        config = ledger_config(tmp_path, f"sqlite:///{tmp_path / 'ledger.db'}", 1883, ledger={"retain_days": days})
        result = ledger_command(config, "exceptions")
        assert result.returncode == 2 and "retain_days" in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
