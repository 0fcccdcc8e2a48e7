"""Device and staff histories at a size people page through: sorted, filtered (how an interval
ended, text, a window typed in local time) and paged on the server with addresses that say the
view, on SQLite and PostgreSQL; and a staff history read from its window answering exactly what
the walk from each device's first event answers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, insert
from starlette.testclient import TestClient

from handoff.ledger import accounts, custody, queries
from handoff.ledger.config import load_ledger_config
from handoff.ledger.console.app import create_app
from handoff.ledger.database import engine_for
from handoff.ledger.schema import assets, devices, events, staff
from tests.kit.console import T0, Clock, log_in, words
from tests.kit.ledger import ledger_config

VIEWER = ("ward-clerk", "clerk password 1")
PEOPLE = {"s-ana": "Ana Alves", "s-bo": "Bo Berg", "s-cy": "Cy Chen"}
ENDS = ("returned", "abandoned", "handoff")
CYCLES = 300
"""Per device: 300 custody intervals an hour apart, the last ending just before T0."""
STEP = 3600.0


def cycle_events(device_id: str, source: str, count: int) -> list[dict[str, Any]]:
    """checkout, forced_logoff, reauth, checkin: one interval each, the people and endings in turn."""
    rows: list[dict[str, Any]] = []
    for n in range(count):
        start = T0 - (count - n) * STEP
        who = list(PEOPLE)[n % 3]
        steps = (("checkout", None, 0), ("forced_logoff", "idle_timeout", 600), ("reauth", None, 900))
        for kind, reason, offset in (*steps, ("checkin", ENDS[n % 3], 1800)):
            rows.append(
                {
                    "id": f"{device_id}-{len(rows)}", "source": source, "seq": len(rows) + 1, "type": kind,
                    "site": "north", "device_id": device_id, "staff_id": who, "session_id": f"{device_id}-{n}",
                    "reason": reason, "at": start + offset, "payload": "{}", "received": T0,
                }
            )  # fmt: skip
    return rows


@pytest.fixture
def ledger(database: str, tmp_path: Path) -> Iterator[tuple[Path, Engine]]:
    config = ledger_config(tmp_path, database, 1883)
    engine = engine_for(load_ledger_config(config).ledger.database)
    with engine.begin() as conn:
        accounts.add(conn, T0, "test", VIEWER[0], "viewer", PasswordHasher().hash(VIEWER[1]))
        conn.execute(
            insert(staff), [{"staff_id": k, "name": v, "role": "nurse", "revoked": False} for k, v in PEOPLE.items()]
        )
        conn.execute(
            insert(assets).values(device_id="WOW-2", model="Capsa", unit="3N", asset_tag="BIO-2", site="north")
        )
        conn.execute(
            insert(devices),
            [{"device_id": d, "site": "north", "state": "available", "last_heard": T0} for d in ("WOW-1", "WOW-2")],
        )
        conn.execute(insert(events), cycle_events("WOW-1", "urn:handoff:north:r1", CYCLES))
        conn.execute(insert(events), cycle_events("WOW-2", "urn:handoff:north:r2", CYCLES // 3))
        custody.rebuild(conn)  # written here, not by ingest
    yield config, engine
    engine.dispose()


@pytest.fixture
def client(ledger: tuple[Path, Engine]) -> Iterator[TestClient]:
    with TestClient(create_app(load_ledger_config(ledger[0]), ledger[1], Clock()), base_url="https://testserver") as c:
        log_in(c, *VIEWER)
        yield c


def table(page: str) -> str:
    return page.rsplit("<tbody>", maxsplit=1)[-1].split("</tbody>", maxsplit=1)[0]


def starts(page: str) -> list[str]:
    """The `From` cell of every row, as the page writes it (UTC, in a <time> element)."""
    return re.findall(r'data-label="From"><time datetime="([^"]+)"', table(page))


def total(page: str) -> int:
    found = re.search(r"<caption>(\d+) custody interval", page)
    assert found, page[:500]
    return int(found.group(1))


def test_a_device_history_is_paged_newest_first_with_addresses_that_say_the_view(client: TestClient) -> None:
    first = client.get("/devices/WOW-1?since=2026-12-01T00:00:00Z")
    assert first.status_code == 200 and total(first.text) == CYCLES
    newest = starts(first.text)
    assert len(newest) == 200 and newest == sorted(newest, reverse=True)
    assert 'href="/devices/WOW-1?page=2&amp;since=2026-12-01T00%3A00%3A00Z" rel="next"' in first.text
    second = client.get("/devices/WOW-1?page=2&since=2026-12-01T00:00:00Z")
    assert len(starts(second.text)) == CYCLES - 200 and max(starts(second.text)) < min(newest)
    oldest = client.get("/devices/WOW-1?since=2026-12-01T00:00:00Z&dir=asc")
    assert starts(oldest.text)[0] == min(starts(oldest.text)) and starts(oldest.text)[0] < min(newest)
    by_holder = words(client.get("/devices/WOW-1?since=2026-12-01T00:00:00Z&sort=who&dir=asc"))
    holders = re.findall(r'data-label="Holder"><a href="/staff/[^"]+">([^<]+)</a>', by_holder)
    assert holders[0] == "Ana Alves" and holders == sorted(holders)
    assert client.get("/devices/WOW-1?page=3&since=2026-12-01T00:00:00Z").status_code == 404
    assert client.get("/devices/WOW-1?sort=colour").status_code == 400
    assert client.get("/devices/WOW-1?ended=lost").status_code == 400


def test_a_device_history_filters_by_ending_and_holder_and_its_csv_is_the_view(client: TestClient) -> None:
    view = "/devices/WOW-1?since=2026-12-01T00:00:00Z&ended=abandoned&q=bo%20berg"
    page = words(client.get(view))
    assert total(page) == CYCLES // 3 and "Ana Alves" not in table(page) and "Bo Berg" in table(page)
    assert set(re.findall(r'data-label="Ended by">(\w+)<', table(page))) == {"abandoned"}
    assert 'name="ended"' in page and '<option value="abandoned" selected>' in page
    assert 'href="/devices/WOW-1?ended=abandoned&amp;q=bo+berg&amp;since=2026-12-01T00%3A00%3A00Z&amp;sort=to"' in page
    sheet = client.get(view + "&format=csv").text.splitlines()
    assert len(sheet) == 1 + CYCLES // 3 and all(line.endswith(",1,n/a") or "abandoned" in line for line in sheet[1:])
    nobody = words(client.get("/devices/WOW-1?since=2026-12-01T00:00:00Z&q=nobody-at-all"))
    assert total(nobody) == 0 and "Nobody held it in this window that matches." in nobody


def test_a_window_typed_in_local_time_is_kept_in_utc_in_the_links(client: TestClient) -> None:
    zone = ZoneInfo("America/New_York")
    since = datetime.fromtimestamp(T0 - 48 * STEP, zone).strftime("%Y-%m-%dT%H:%M:%S")
    until = datetime.fromtimestamp(T0 - 24 * STEP, zone).strftime("%Y-%m-%dT%H:%M:%S")
    page = client.get("/devices/WOW-1", params={"tz": "America/New_York", "since": since, "until": until}).text
    assert total(page) == 25, "the intervals overlapping 48 h to 24 h before T0"
    utc = datetime.fromtimestamp(T0 - 48 * STEP, ZoneInfo("UTC")).strftime("%Y-%m-%dT%H%%3A%M%%3A%SZ")
    sort_link = re.search(r'href="(/devices/WOW-1\?[^"]*sort=ended[^"]*)"', page)
    assert sort_link and f"since={utc}" in sort_link.group(1) and "tz=" not in sort_link.group(1)
    again = client.get(sort_link.group(1).replace("&amp;", "&")).text
    assert total(again) == 25


def test_a_staff_history_is_filtered_by_device_or_asset_tag_sorted_and_paged(client: TestClient) -> None:
    page = words(client.get("/staff/s-bo?since=2026-12-01T00:00:00Z"))
    assert total(page) == CYCLES // 3 + CYCLES // 9
    tagged = words(client.get("/staff/s-bo?since=2026-12-01T00:00:00Z&q=bio-2"))
    assert total(tagged) == CYCLES // 9 and "WOW-1<" not in table(tagged) and "BIO-2" in table(tagged)
    by_device = client.get("/staff/s-bo?since=2026-12-01T00:00:00Z&sort=who").text
    shown = re.findall(r'data-label="Device"><a href="/devices/([^"]+)"', table(by_device))
    assert shown[0] == "WOW-2" and shown == sorted(shown, reverse=True)
    held = client.get("/staff/s-bo?since=2026-12-01T00:00:00Z&ended=held").text
    assert total(held) == 0


@pytest.mark.parametrize("back_h", [1.5, 100.0, 299.9])
def test_a_staff_history_read_from_its_window_is_the_walk_from_the_first_event(
    ledger: tuple[Path, Engine], back_h: float
) -> None:
    """The window starting inside an interval (1.5 h: Bo's is 0.5 h long, so it starts in Cy's
    gap), at an interval's start and near the first: sessions and logoffs are those of the full
    walk."""
    since, until = T0 - back_h * STEP, T0 - 0.5 * STEP
    lost = [  # Bo's checkin of WOW-9 never arrived: Cy's checkout ends Bo's interval, then Bo's is open again
        {"id": f"lost{n}", "source": "urn:handoff:north:r9", "seq": n + 1, "type": "checkout", "site": "north",
         "device_id": "WOW-9", "staff_id": who, "session_id": f"lost{n}", "reason": None, "at": at,
         "payload": "{}", "received": T0}
        for n, (who, at) in enumerate([("s-bo", since - 60), ("s-cy", since + 60), ("s-bo", since + 120)])
    ]  # fmt: skip
    with ledger[1].begin() as conn:
        conn.execute(insert(events), lost)
    with ledger[1].connect() as conn:
        for person in PEOPLE:
            everything = queries.history(conn, staff_id=person)
            expected = [i for i in everything if i.start <= until and (i.end is None or i.end >= since)]
            assert queries.history(conn, staff_id=person, since=since, until=until) == expected
            assert expected or back_h < 2
