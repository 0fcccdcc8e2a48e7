"""The fleet and the exceptions queue at a size people page through: sorted, filtered and paged
on the server with addresses that say the view, counts that add up and link to their rows, and
exceptions acknowledged in bulk with a note. The real application over a real SQLite ledger."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, insert, select
from starlette.testclient import TestClient

from handoff.ledger import accounts
from handoff.ledger.config import load_ledger_config
from handoff.ledger.console.app import create_app
from handoff.ledger.database import engine_for
from handoff.ledger.schema import assets, audit_log, devices, exceptions, staff
from tests.kit.console import T0, Clock, csrf_of, log_in, words
from tests.kit.ledger import ledger_config, sqlite_ledger

ADMIN, VIEWER = ("chief-biomed", "admin password 1"), ("ward-clerk", "clerk password 1")
STATES = ("in_use", "locked", "available", "maintenance", None)
DEVICES = 450
OFFLINE = 250


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Engine]]:
    root = tmp_path_factory.mktemp("lists")
    config = ledger_config(root, sqlite_ledger(root / "ledger.db"), 1883)
    engine = engine_for(load_ledger_config(config).ledger.database)
    with engine.begin() as conn:
        for (name, password), role in ((ADMIN, "admin"), (VIEWER, "viewer")):
            accounts.add(conn, T0, "test", name, role, PasswordHasher().hash(password))
        conn.execute(
            insert(devices),
            [
                {
                    "device_id": f"WOW-{n:04d}", "site": "north" if n % 3 else "south", "state": STATES[n % 5],
                    "staff_id": f"S{n % 40:03d}" if STATES[n % 5] in ("in_use", "locked") else None,
                    "since": T0 - n * 60, "last_heard": T0 - (n % 7) * 100,
                }
                for n in range(DEVICES)
            ],
        )  # fmt: skip
        conn.execute(
            insert(staff),
            [{"staff_id": f"S{n:03d}", "name": f"Person {chr(90 - n % 26)}{n:02d}", "role": "nurse", "revoked": False}
             for n in range(40)],
        )  # fmt: skip
        conn.execute(
            insert(assets).values(device_id="WOW-0007", model="Capsa", unit="3N", asset_tag="BIO-7", site="north")
        )
        conn.execute(
            insert(exceptions),
            [
                {"type": "appliance_offline", "device_id": f"WOW-{n:04d}", "source": "", "key": f"WOW-{n:04d}",
                 "opened": T0 - 1000 + n, "detail": "not heard"}
                for n in range(OFFLINE)
            ]
            + [{"type": "overdue", "device_id": "WOW-0001", "source": "", "key": "WOW-0001", "opened": T0,
                "detail": "held by S001"}],
        )  # fmt: skip
    yield config, engine
    engine.dispose()


@pytest.fixture
def admin(ledger: tuple[Path, Engine]) -> Iterator[TestClient]:
    with TestClient(create_app(load_ledger_config(ledger[0]), ledger[1], Clock()), base_url="https://testserver") as c:
        log_in(c, *ADMIN)
        yield c


def device_rows(page: str) -> list[str]:
    body = page.split('<table class="devices">')[1].split("</table>", maxsplit=1)[0]
    return re.findall(r'<th scope="row"[^>]*><a href="/devices/([^"]+)"', body)


def shown_total(page: str) -> int:
    found = re.search(r"of (\d+), page", page)
    return int(found.group(1)) if found else len(device_rows(page))


def test_the_fleet_counts_add_up_and_each_links_to_its_rows(admin: TestClient) -> None:
    fleet = admin.get("/fleet?site=north")
    counts = dict(re.findall(r'<a href="([^"]+)"><strong>(\d+)</strong>', fleet.text))
    by_link = {link.replace("&amp;", "&"): int(n) for link, n in counts.items()}
    devices_link = next(link for link in by_link if "state" not in link and "flag" not in link)
    states = [link for link in by_link if "state=" in link]
    assert len(states) == 5 and sum(by_link[link] for link in states) == by_link[devices_link] == 300
    for link, count in by_link.items():
        assert shown_total(admin.get(link).text) == count, link


def test_the_fleet_sorts_pages_and_filters_on_the_server_with_stable_addresses(admin: TestClient) -> None:
    first = admin.get("/fleet")
    assert device_rows(first.text)[:3] == ["WOW-0000", "WOW-0001", "WOW-0002"] and len(device_rows(first.text)) == 200
    assert 'href="/fleet?page=2" rel="next"' in first.text
    third = admin.get("/fleet?page=3")
    assert device_rows(third.text) == [f"WOW-{n:04d}" for n in range(400, DEVICES)]
    assert device_rows(admin.get("/fleet?sort=since&dir=desc").text)[:2] == ["WOW-0000", "WOW-0001"]
    assert device_rows(admin.get("/fleet?sort=since").text)[:2] == [f"WOW-{DEVICES - 1:04d}", f"WOW-{DEVICES - 2:04d}"]
    by_holder = words(admin.get("/fleet?sort=holder&state=in_use"))
    holders = re.findall(r'href="/staff/S\d+">(Person \w+)</a>', by_holder)
    assert holders == sorted(holders) and holders
    assert device_rows(admin.get("/fleet?q=bio-7").text) == ["WOW-0007"]
    assert device_rows(admin.get("/fleet?q=person%20z00").text) == [f"WOW-{n:04d}" for n in range(0, DEVICES, 40)]
    assert admin.get("/fleet?sort=nonsense").status_code == 400
    assert admin.get("/fleet?page=99").status_code == 404 and admin.get("/fleet?page=-1").status_code == 404
    assert admin.get("/fleet?state=none&format=csv").text.count("\n") == 1 + DEVICES // 5


def test_exceptions_are_grouped_by_kind_with_readable_names_filtered_and_paged(admin: TestClient) -> None:
    page = words(admin.get("/exceptions"))
    groups = page.split('<table class="groups">')[1].split("</table>")[0]
    assert "Appliance offline" in groups and "has not been heard from" in groups
    assert f'status=open&amp;type=appliance_offline">{OFFLINE}</a>' in groups
    offline = admin.get("/exceptions?type=appliance_offline&status=open&page=2")
    assert offline.status_code == 200 and f"Rows 201\u2013{OFFLINE} of {OFFLINE}" in offline.text
    only = words(admin.get("/exceptions?q=WOW-0001&type=overdue"))
    assert only.count('class="open"') == 1 and "held by S001" in only
    assert admin.get("/exceptions?status=lost").status_code == 400


def test_an_admin_acknowledges_in_bulk_with_a_note_and_they_read_acknowledged(
    admin: TestClient, ledger: tuple[Path, Engine]
) -> None:
    view = "/exceptions?status=unacknowledged&type=appliance_offline"
    page = admin.get(view)
    picked = re.findall(r'name="id" value="(\d+)"', page.text)
    assert len(picked) == 200
    done = admin.post(
        "/exceptions/acknowledge",
        data={"csrf": csrf_of(page.text), "id": picked, "note": "network switch 3N replaced", "back": view},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == view
    left = admin.get(view)
    assert f"of {OFFLINE - 200}" in left.text or left.text.count('name="id"') == OFFLINE - 200
    acked = words(admin.get("/exceptions?status=acknowledged"))
    assert "open, acknowledged" in acked and f"by {ADMIN[0]} at" in acked and "network switch 3N replaced" in acked
    with ledger[1].connect() as conn:
        notes = conn.execute(select(audit_log.c.detail).where(audit_log.c.action == "exception_acknowledged")).scalars()
        assert sum("note: network switch 3N replaced" in detail for detail in notes) == 200


def test_bulk_acknowledgement_refuses_a_viewer_a_forged_form_and_junk_ids(
    ledger: tuple[Path, Engine], admin: TestClient
) -> None:
    with ledger[1].connect() as conn:
        waiting = conn.execute(select(exceptions.c.id).where(exceptions.c.type == "overdue")).scalar_one()
    with TestClient(create_app(load_ledger_config(ledger[0]), ledger[1], Clock()), base_url="https://testserver") as v:
        log_in(v, *VIEWER)
        token = csrf_of(v.get("/exceptions").text)
        assert v.post("/exceptions/acknowledge", data={"csrf": token, "id": [str(waiting)]}).status_code == 403
    assert admin.post("/exceptions/acknowledge", data={"csrf": "forged", "id": [str(waiting)]}).status_code == 403
    token = csrf_of(admin.get("/exceptions").text)
    for junk in (["x"], ["99999999999999999999999"], []):
        assert admin.post("/exceptions/acknowledge", data={"csrf": token, "id": junk}).status_code == 400, junk
    away = admin.post(
        f"/exceptions/{waiting}/acknowledge", data={"csrf": token, "back": "//evil.example/"}, follow_redirects=False
    )
    assert away.status_code == 303 and away.headers["location"] == "/exceptions"
    with ledger[1].connect() as conn:
        assert conn.execute(select(exceptions.c.acked_by).where(exceptions.c.id == waiting)).scalar_one() == ADMIN[0]


def test_after_an_acknowledgement_the_page_returns_at_the_next_row(admin: TestClient) -> None:
    view = "/exceptions?status=unacknowledged&type=appliance_offline"
    page = admin.get(view).text
    first, after = re.findall(r'formaction="/exceptions/(\d+)/acknowledge" name="focus" value="(flag-\d+)"', page)[0]
    assert f'<tr id="{after}" tabindex="-1"' in page
    sent = {"csrf": csrf_of(page), "back": view, "focus": after}
    done = admin.post(f"/exceptions/{first}/acknowledge", data=sent, follow_redirects=False)
    assert done.headers["location"] == f"{view}#{after}"
    second = re.findall(r'formaction="/exceptions/(\d+)/acknowledge"', admin.get(view).text)[0]
    forged = {**sent, "focus": "x onfocus=alert(1)", "back": view + "#elsewhere"}
    done = admin.post(f"/exceptions/{second}/acknowledge", data=forged, follow_redirects=False)
    assert done.headers["location"] == "/exceptions"
