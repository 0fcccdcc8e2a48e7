"""Names, assets and finding things: the badge directory CSV and the asset register imported by
`handoff ledger directory|assets import` (real processes), then the console's search box, staff
index and pages over a real SQLite ledger, in process."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, insert
from starlette.testclient import TestClient

from handoff.ledger import accounts
from handoff.ledger.config import load_ledger_config
from handoff.ledger.console.app import create_app
from handoff.ledger.database import engine_for
from handoff.ledger.schema import devices
from tests.kit.console import T0, Clock, log_in, words
from tests.kit.ledger import ledger_command, ledger_config, sqlite_ledger

VIEWER = ("ward-clerk", "clerk password 1")
UID = "04A1B2C3D4E5F6"
DIRECTORY = f"""uid,staff_id,name,role,revoked
{UID},N1001,Ana Lima,nurse,false
04FFEEDDCCBBAA,N1001,Ana Lima,nurse,true
0A0B0C0D,D2002,Bo Berg,physician,
0A0B0C0E,D2003,Cleo Park,physician,yes
"""
ASSETS = """device_id,model,unit,asset_tag,site
WOW-3N-07,Capsa M38e,3 North,BIO-004711,north
WOW-3N-08,Capsa M38e,3 North,BIO-004712,north
"""


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Engine]]:
    root = tmp_path_factory.mktemp("find")
    config = ledger_config(root, sqlite_ledger(root / "ledger.db"), 1883)
    (root / "badges.csv").write_text(DIRECTORY)
    (root / "assets.csv").write_text(ASSETS)
    for kind in ("directory", "assets"):
        imported = ledger_command(config, kind, "import", str(root / f"{kind if kind == 'assets' else 'badges'}.csv"))
        assert imported.returncode == 0, imported.stderr
        assert UID not in imported.stdout + imported.stderr
    engine = engine_for(load_ledger_config(config).ledger.database)
    with engine.begin() as conn:
        accounts.add(conn, T0, "test", VIEWER[0], "viewer", PasswordHasher().hash(VIEWER[1]))
        conn.execute(
            insert(devices).values(
                device_id="WOW-3N-07", site="north", state="in_use", staff_id="N1001", since=T0 - 60, last_heard=T0
            )
        )
    yield config, engine
    engine.dispose()


@pytest.fixture(scope="module")
def client(ledger: tuple[Path, Engine]) -> Iterator[TestClient]:
    app = create_app(load_ledger_config(ledger[0]), ledger[1], Clock())
    with TestClient(app, base_url="https://testserver") as made:
        log_in(made, *VIEWER)
        yield made


def test_the_directory_keeps_names_and_roles_and_never_a_uid(ledger: tuple[Path, Engine]) -> None:
    database = Path(str(ledger[1].url.database))
    stored = b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))
    assert UID.encode() not in stored and UID.lower().encode() not in stored
    assert b"Ana Lima" in stored and b"Capsa M38e" in stored


def test_pages_show_names_and_assets(client: TestClient) -> None:
    fleet = words(client.get("/fleet"))
    assert 'href="/staff/N1001">Ana Lima</a> <span class="id">N1001</span>' in fleet
    assert "BIO-004711" in fleet
    device = words(client.get("/devices/WOW-3N-07"))
    assert "<dd>Capsa M38e</dd>" in device and "<dd>3 North</dd>" in device and "<dd>BIO-004711</dd>" in device
    staff = words(client.get("/staff/N1001"))
    assert "Ana Lima" in staff and "nurse" in staff and "every badge revoked" not in staff
    assert "every badge revoked" in words(client.get("/staff/D2003"))
    assert words(client.get("/devices/WOW-3N-08")).count("BIO-004712") >= 1, "a device only the register knows"


def test_the_search_box_goes_to_an_exact_id_or_tag_and_lists_the_rest(client: TestClient) -> None:
    for query, page in (
        ("WOW-3N-07", "/devices/WOW-3N-07"),
        ("bio-004712", "/devices/WOW-3N-08"),
        ("D2002", "/staff/D2002"),
    ):
        found = client.get("/search", params={"q": query}, follow_redirects=False)
        assert (found.status_code, found.headers.get("location")) == (303, page), query
    listed = words(client.get("/search", params={"q": "park"}))
    assert 'href="/staff/D2003">Cleo Park</a>' in listed
    models = words(client.get("/search", params={"q": "capsa"}))
    assert "WOW-3N-07" in models and "WOW-3N-08" in models
    for page in ("/fleet", "/staff", "/exceptions", "/who", "/devices/WOW-3N-07"):
        assert 'role="search"' in client.get(page).text, page


def test_unknown_ids_are_404_no_such_device_or_staff_member(client: TestClient) -> None:
    for path, said in (
        ("/staff/N1OO1", "no such staff member"),
        ("/devices/WOW-3N-O7", "no such device"),
        ("/who?device=WOW-3N-O7&at=2027-01-15T08:00:00Z", "no such device"),
    ):
        refused = client.get(path)
        assert refused.status_code == 404 and said in refused.text, path
    nothing = client.get("/search", params={"q": "zz-nothing"})
    assert nothing.status_code == 404 and "No device and no staff member matches" in html.unescape(nothing.text)


def test_the_staff_index_lists_the_directory_by_name_with_what_each_holds(client: TestClient) -> None:
    index = words(client.get("/staff"))
    rows = index.split("<tbody>")[1]
    assert rows.index("Ana Lima") < rows.index("Bo Berg") < rows.index("Cleo Park")
    assert re.search(r"<td[^>]*>N1001</td><td[^>]*>nurse</td><td[^>]*>active</td><td[^>]*>1</td>", rows)
    assert re.search(r"<td[^>]*>D2003</td><td[^>]*>physician</td><td[^>]*>revoked</td><td[^>]*>0</td>", rows)
    assert client.get("/staff?page=2").status_code == 404 and client.get("/staff?page=x").status_code == 404


def test_a_wildcard_or_markup_in_the_search_matches_and_runs_nothing(client: TestClient) -> None:
    for query in ("%", "_", "%%", "N1%1"):
        assert client.get("/search", params={"q": query}).status_code == 404, query
    payload = '"><script>alert(1)</script>'
    answer = client.get("/search", params={"q": payload})
    assert "<script>alert" not in answer.text and "&lt;script&gt;" in answer.text


def test_a_bad_register_line_refuses_the_whole_file_naming_the_line(
    tmp_path: Path, ledger: tuple[Path, Engine]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(f"uid,staff_id,name,role\n{UID},N9,Ana\u202eLima,nurse\n")
    refused = ledger_command(ledger[0], "directory", "import", str(bad))
    assert refused.returncode == 2 and "line 2: name holds a control or invisible character" in refused.stderr
    assert UID not in refused.stderr and "Traceback" not in refused.stderr
