"""An exception's details say how things stand now, not when it opened: `holds_many` counts
and lists the devices the person holds at this moment, in the queue and on its own page, and a
device's exception shows the device as it is now. The ledger's own `evaluate` over a real
database (SQLite and PostgreSQL), read through the real console."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, insert, select, update
from starlette.testclient import TestClient

from handoff.ledger import accounts
from handoff.ledger.config import load_ledger_config
from handoff.ledger.console.app import create_app
from handoff.ledger.ingest import evaluate
from handoff.ledger.schema import devices, exceptions, staff
from tests.kit.console import T0, Clock, log_in, words
from tests.kit.ledger import ledger_config

VIEWER = ("ward-clerk", "clerk password 1")
HELD_AT_OPENING, HELD_LATER = 3, 7


@pytest.fixture
def console(engine: Engine, database: str, tmp_path: Path) -> Iterator[TestClient]:
    config = ledger_config(tmp_path, database, 1883)
    with engine.begin() as conn:
        accounts.add(conn, T0, "test", VIEWER[0], "viewer", PasswordHasher().hash(VIEWER[1]))
        conn.execute(insert(staff).values(staff_id="s-ana", name="Ana Alves", role="nurse", revoked=False))
        conn.execute(
            insert(devices),
            [
                {"device_id": f"WOW-{n}", "site": "north", "state": "available", "staff_id": None, "since": None,
                 "last_heard": T0}
                for n in range(HELD_LATER)
            ],
        )  # fmt: skip
    with TestClient(create_app(load_ledger_config(config), engine, Clock()), base_url="https://testserver") as client:
        log_in(client, *VIEWER)
        yield client


def hold(engine: Engine, count: int, now: float) -> None:
    """Ana holds the first `count` devices, then the ledger evaluates the time rules."""
    with engine.begin() as conn:
        for n in range(HELD_LATER):
            held = n < count
            conn.execute(
                update(devices)
                .where(devices.c.device_id == f"WOW-{n}")
                .values(state="in_use" if held else "available", staff_id="s-ana" if held else None, since=T0)
            )
        evaluate(conn, now, overdue_after_s=10**6, offline_after_s=10**6, holds_many=2)


def test_holds_many_reads_the_devices_held_now_not_the_count_at_opening(engine: Engine, console: TestClient) -> None:
    hold(engine, HELD_AT_OPENING, T0)
    with engine.connect() as conn:
        flag_id = conn.execute(select(exceptions.c.id).where(exceptions.c.type == "holds_many")).scalar_one()
    assert f"s-ana holds {HELD_AT_OPENING} devices" in words(console.get("/exceptions"))
    hold(engine, HELD_LATER, T0 + 60)
    queue = words(console.get("/exceptions?type=holds_many"))
    assert f"s-ana holds {HELD_LATER} devices" in queue and f"holds {HELD_AT_OPENING} devices" not in queue
    assert f'href="/exceptions/{flag_id}"' in queue
    details = words(console.get(f"/exceptions/{flag_id}"))
    now = details.split('id="holds-now"')[1].split("</section>")[0]
    assert f"holds {HELD_LATER} devices now" in now and "Ana Alves" in now
    assert re.findall(r'href="/devices/(WOW-\d)"', now) == [f"WOW-{n}" for n in range(HELD_LATER)]
    hold(engine, 1, T0 + 120)
    closed = words(console.get(f"/exceptions/{flag_id}"))
    assert "closed" in closed and "holds 1 device now" in closed and "WOW-6" not in closed


def test_a_device_exception_shows_the_device_as_it_is_now(engine: Engine, console: TestClient) -> None:
    with engine.begin() as conn:
        conn.execute(update(devices).where(devices.c.device_id == "WOW-4").values(status="offline"))
        evaluate(conn, T0, overdue_after_s=10**6, offline_after_s=10**6, holds_many=10)
        flag_id = conn.execute(select(exceptions.c.id).where(exceptions.c.type == "appliance_offline")).scalar_one()
    assert "✕ offline" in console.get(f"/exceptions/{flag_id}").text
    with engine.begin() as conn:
        conn.execute(
            update(devices)
            .where(devices.c.device_id == "WOW-4")
            .values(status="online", state="in_use", staff_id="s-ana", since=T0)
        )
    now = words(console.get(f"/exceptions/{flag_id}")).split('id="device-now"')[1]
    assert "online" in now and "offline" not in now and "Ana Alves" in now


def test_an_exception_no_row_has_is_404(console: TestClient) -> None:
    for flag in ("424242", "99999999999999999999999", "x", "acknowledge"):
        assert console.get(f"/exceptions/{flag}").status_code == 404, flag


def test_the_queue_pages_open_ones_oldest_first_then_closed_ones_newest_first(
    engine: Engine, console: TestClient
) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(exceptions),
            [
                {"type": "seq_gap", "device_id": f"WOW-{n % 7}", "source": "s", "key": f"k{n}",
                 "opened": T0 - 10_000 + n, "closed": None if n < 250 else T0 + n, "detail": f"row {n}"}
                for n in range(300)
            ],
        )  # fmt: skip
    second = words(console.get("/exceptions?page=2"))
    shown = [int(n) for n in re.findall(r"<td data-label=\"Detail\">row (\d+)</td>", second)]
    assert shown == [*range(200, 250), *range(299, 249, -1)]
    sheet = console.get("/exceptions?format=csv").text.splitlines()[1:]
    assert [int(line.split("row ")[1].split(",")[0]) for line in sheet] == [*range(250), *range(299, 249, -1)]
