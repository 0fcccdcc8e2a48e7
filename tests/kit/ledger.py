"""The kit's ledger: the ledger and its console as child processes, and enrolment of keys; and
what only the ledger tests read (events made by hand, what the database holds, a ledger command).

The children live in `handoff.testing.ledger`, which the demo and the benches share.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from sqlalchemy import Engine, func, select

from handoff.ledger.ingest import Message
from handoff.ledger.schema import counters, events
from handoff.sim.fleet import SimAppliance
from handoff.testing.cli import run_handoff
from handoff.testing.ledger import (
    Console,
    Ledger,
    add_user,
    audit_key,
    enrol_key,
    enrolled,
    enrolled_fleet,
    ledger_config,
    sim_fleet,
    spawned_children,
)
from handoff.testing.ledger_schema import sqlite_ledger
from tests.kit.wait import wait_for

__all__ = [
    "Console",
    "Ledger",
    "add_user",
    "audit_key",
    "counted",
    "enrol_key",
    "enrolled",
    "enrolled_fleet",
    "ledger_command",
    "ledger_config",
    "made",
    "queue_backlog",
    "sim_fleet",
    "spawned_children",
    "sqlite_ledger",
    "stored",
    "wait_for",
]


def made(appliance: SimAppliance, count: int, start: float) -> list[Message]:
    """The appliance's next `count` events, one a second from `start`."""
    return [Message(*appliance.next_event(start + n)) for n in range(count)]


def queue_backlog(ledger: Ledger, engine: Engine, port: int, keys: Path, events: int) -> None:
    """A backlog waiting for `ledger` at the broker on `port`: the ledger started once, so that the
    broker keeps its session, and stopped; then four carts enrolled under `keys` publish `events`
    signed events (and as many retained states) while it is down."""
    ledger.start()
    ledger.kill(signal.SIGTERM)
    enrolled_fleet(engine, keys, 4)
    status = sim_fleet(port, rate=50_000, events=events, keys=keys).wait(120)
    if status != 0:
        raise RuntimeError(f"handoff sim fleet exited {status}")


def ledger_command(config: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """`handoff ledger ARGS -c CONFIG` in this process, with `stdin` (a password) on its standard input."""
    return run_handoff("ledger", *args, "-c", config, input=stdin)


def stored(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(events)).scalar_one())


def counted(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {name: int(value) for name, value in conn.execute(select(counters.c.name, counters.c.value))}
