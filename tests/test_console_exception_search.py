"""The exceptions queue's text filter: a device id, a key or words of the detail, in any case,
with `%` and `_` taken as themselves and never a match made of the end of one field and the
start of the next; on PostgreSQL read through its trigram index rather than a scan of every row.
SQLite and PostgreSQL, through the real console."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, event, insert, text
from starlette.testclient import TestClient

from handoff.ledger import accounts
from handoff.ledger.config import load_ledger_config
from handoff.ledger.console.app import create_app
from handoff.ledger.schema import exceptions
from tests.kit.console import T0, Clock, log_in
from tests.kit.ledger import ledger_config

VIEWER = ("ward-clerk", "clerk password 1")
ROWS = 20_000


@pytest.fixture
def console(engine: Engine, database: str, tmp_path: Path) -> Iterator[TestClient]:
    config = ledger_config(tmp_path, database, 1883)
    with engine.begin() as conn:
        accounts.add(conn, T0, "test", VIEWER[0], "viewer", PasswordHasher().hash(VIEWER[1]))
        conn.execute(
            insert(exceptions),
            [
                {"type": "overdue", "device_id": f"WOW-{n:04d}", "source": "", "key": f"WOW-{n:04d}",
                 "opened": T0 - n, "closed": None if n % 3 else T0, "detail": f"held by S{n % 40:03d}"}
                for n in range(ROWS)
            ]
            + [
                {"type": "holds_many", "device_id": "", "source": "", "key": key, "opened": T0, "closed": None,
                 "detail": detail}
                for key, detail in (("s-ana", "holds 100% of carts_now"), ("s-bo", "holds 1000 of cartsXnow"))
            ],
        )  # fmt: skip
    with TestClient(create_app(load_ledger_config(config), engine, Clock()), base_url="https://testserver") as client:
        log_in(client, *VIEWER)
        yield client


def found(console: TestClient, query: str) -> tuple[int, list[str]]:
    """How many rows the filter says it found, and the devices (or keys) of the first page."""
    page = console.get("/exceptions", params={"q": query})
    assert page.status_code == 200
    total = int(re.search(r": (\d+)</h2>", page.text).group(1))  # type: ignore[union-attr]
    table = page.text.split('id="flags-table">')[1].split("</table>")[0]
    return total, re.findall(r'<td data-label="Device">(?:<a href="[^"]+">)?<bdi>([^<]+)', table)


def test_the_text_filter_finds_any_field_in_any_case_and_takes_wildcards_literally(console: TestClient) -> None:
    assert found(console, "wow-0042") == (1, ["WOW-0042"])
    total, shown = found(console, "s007")
    assert total == ROWS // 40 and len(shown) == 200 and all(int(device[4:]) % 40 == 7 for device in shown)
    assert found(console, "100%") == (1, ["s-ana"])
    assert found(console, "s_n") == (1, ["s-ana"])
    assert found(console, "s-bo") == (1, ["s-bo"])
    assert found(console, "0042\nWOW") == (0, [])
    assert found(console, "nothing like it") == (0, [])


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)  # SQLite has no trigram index: it scans
def test_on_postgresql_the_text_filter_reads_its_trigram_index(console: TestClient, engine: Engine) -> None:
    """Every statement the page sends for the filter, explained with its own parameters."""
    sent: list[tuple[str, Any]] = []

    def keep(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if "ILIKE" in statement:
            sent.append((statement, parameters))

    with engine.connect() as conn:
        conn.execute(text("ANALYZE exceptions"))
        conn.commit()
    event.listen(engine, "before_cursor_execute", keep)
    try:
        assert found(console, "WOW-0042") == (1, ["WOW-0042"])
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    assert len(sent) >= 2
    with engine.connect() as conn:
        for statement, parameters in sent:
            plan = "\n".join(conn.exec_driver_sql("EXPLAIN " + statement, parameters).scalars())
            assert "exceptions_text" in plan and "Seq Scan" not in plan, plan
