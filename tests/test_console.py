"""The console's security and pages, in process: the real Starlette application over a real
SQLite ledger, driven through Starlette's TestClient with the console's clock in the test's hand
(idle logout and the absolute lifetime are minutes and hours; nothing here mocks the console).
The browser test (test_console_browser.py) drives the real `handoff ledger serve` in Chromium."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, insert, select
from starlette.routing import Route
from starlette.testclient import TestClient

from handoff.errors import ConfigError
from handoff.ledger import custody
from handoff.ledger.config import LedgerConfig, load_ledger_config
from handoff.ledger.console.app import create_app
from handoff.ledger.console.headers import CSP
from handoff.ledger.console.logins import IDLE_S, LIFETIME_S
from handoff.ledger.database import engine_for
from handoff.ledger.schema import audit_log, devices, events, exceptions, staff
from handoff.provision.render import render_toml
from tests.kit.cli import CliRunner
from tests.kit.console import T0, Clock, csrf_of, log_in, session_cookie, words
from tests.kit.ledger import add_user, ledger_config, sqlite_ledger

ADMIN, VIEWER = ("root-admin", "admin password 1"), ("ward-viewer", "viewer password 1")
FORM = "application/x-www-form-urlencoded"


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Engine]]:
    root = tmp_path_factory.mktemp("console")
    config = ledger_config(root, sqlite_ledger(root / "ledger.db"), 1883)
    add_user(config, *ADMIN[:1], "admin", ADMIN[1])
    add_user(config, *VIEWER[:1], "viewer", VIEWER[1])
    engine = engine_for(load_ledger_config(config).ledger.database)
    with engine.begin() as conn:
        conn.execute(
            insert(devices).values(
                device_id="WOW-1", site="north", state="in_use", staff_id="=cmd|x", since=T0 - 60, last_heard=T0
            )
        )
        conn.execute(insert(staff).values(staff_id="ana", name="Ana Lima", role="nurse", revoked=False))
        conn.execute(
            insert(exceptions).values(
                id=1, type="overdue", device_id="WOW-1", source="", key="WOW-1", opened=T0, detail="held by =cmd|x"
            )
        )
        conn.execute(
            insert(exceptions).values(
                id=2,
                type="break_glass_review",
                device_id="WOW-1",
                source="",
                key="break_glass:gone",
                opened=T0,
                detail="x",
            )
        )
    yield config, engine
    engine.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(ledger: tuple[Path, Engine], clock: Clock) -> Iterator[TestClient]:
    config, engine = ledger
    with TestClient(create_app(load_ledger_config(config), engine, clock), base_url="https://testserver") as made:
        yield made


def get_routes(client: TestClient) -> list[str]:
    paths = []
    for route in client.app.routes:  # type: ignore[attr-defined]
        if isinstance(route, Route) and route.methods and "GET" in route.methods:
            paths.append(
                route.path.replace("{device_id}", "WOW-1")
                .replace("{staff_id}", "ana")
                .replace("{flag_id}/review", "2/review")
                .replace("{flag_id}", "1")
            )
    return paths


def test_every_page_but_login_and_healthz_sends_the_browser_to_login(client: TestClient) -> None:
    gated = [path for path in get_routes(client) if path not in ("/login", "/healthz")]
    assert {"/fleet", "/devices/WOW-1", "/staff/ana", "/exceptions", "/who"} <= set(gated)
    for path in gated:
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next="), path
        assert client.get(path + "?format=csv", follow_redirects=False).status_code == 303
    for posted in ("/logout", "/exceptions/1/acknowledge"):
        assert client.post(posted, data={"csrf": "x"}, follow_redirects=False).status_code == 303
    assert client.get("/healthz").text == "ok\n"
    assert client.get("/login").status_code == 200
    assert client.get("/static/console.css").status_code == 200


def test_login_gives_a_strict_cookie_with_a_new_256_bit_session_id_each_time(client: TestClient) -> None:
    first = log_in(client, *ADMIN)
    assert first.status_code == 303 and first.headers["location"] == "/fleet"
    cookie = session_cookie(first)
    assert re.search(r"; HttpOnly", cookie) and re.search(r"; Secure", cookie)
    assert re.search(r"SameSite=strict", cookie, re.IGNORECASE) and "Path=/" in cookie and "Domain" not in cookie
    token = cookie.split(";")[0].split("=", 1)[1]
    assert len(token) >= 43 and re.fullmatch(r"[A-Za-z0-9_-]+", token)
    assert client.get("/fleet").status_code == 200
    again = log_in(client, *ADMIN)
    second = session_cookie(again).split(";")[0].split("=", 1)[1]
    assert second != token
    client.cookies.clear()
    client.cookies.set("__Host-handoff-session", token)
    assert client.get("/fleet", follow_redirects=False).status_code == 303, "the replaced session still works"


def test_a_wrong_password_is_refused_and_repeated_failures_lock_the_name(
    client: TestClient, clock: Clock, ledger: tuple[Path, Engine]
) -> None:
    for _ in range(5):
        refused = log_in(client, ADMIN[0], "not the password")
        assert refused.status_code == 401 and "Wrong name, password or one-time code" in refused.text
    throttled = log_in(client, *ADMIN)
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) > 0
    assert "__Host-handoff-session" not in throttled.headers.get("set-cookie", "")
    clock.now += 15 * 60 + 1
    assert log_in(client, *ADMIN).status_code == 303
    with ledger[1].connect() as conn:
        actions = [row.action for row in conn.execute(select(audit_log).where(audit_log.c.actor == ADMIN[0]))]
    assert actions.count("login_failed") >= 5 and "login_throttled" in actions and "login" in actions


def test_an_unknown_name_is_refused_like_a_wrong_password(client: TestClient) -> None:
    refused = log_in(client, "nobody-here", "whatever it is")
    assert refused.status_code == 401 and "Wrong name, password or one-time code" in refused.text


def test_headers_forbid_inline_script_and_pages_contain_none(client: TestClient) -> None:
    assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP and "frame-ancestors 'none'" in CSP
    log_in(client, *ADMIN)
    for path in [*get_routes(client), "/who?device=WOW-1&at=2027-01-15T08:00:00Z"]:
        response = client.get(path)
        assert response.status_code == 200, (path, response.text[:300])
        assert response.headers["content-security-policy"] == CSP
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["strict-transport-security"].startswith("max-age=")
        assert not re.search(r"<script(?![^>]*\bsrc=)", response.text), path
        assert not re.search(r"\sstyle=|\son[a-z]+=", response.text), path


def test_a_post_without_its_csrf_token_is_refused(client: TestClient, ledger: tuple[Path, Engine]) -> None:
    assert client.post("/login", data={"name": ADMIN[0], "password": ADMIN[1]}).status_code == 403
    form = client.get("/login")
    client.cookies.delete("__Host-handoff-login")
    stale = {"csrf": csrf_of(form.text), "name": ADMIN[0], "password": ADMIN[1]}
    assert client.post("/login", data=stale).status_code == 403
    log_in(client, *ADMIN)
    with ledger[1].begin() as conn:
        flag = conn.execute(
            insert(exceptions).values(type="overdue", device_id="WOW-1", source="", key="WOW-1", opened=T0, detail="x")
        ).inserted_primary_key[0]
    for path in ("/logout", f"/exceptions/{flag}/acknowledge"):
        assert client.post(path, data={}).status_code == 403, path
        assert client.post(path, data={"csrf": "forged"}).status_code == 403, path
    assert client.get("/fleet", follow_redirects=False).status_code == 200, "a refused logout logged out"
    with ledger[1].connect() as conn:
        assert conn.execute(select(exceptions.c.acked_by).where(exceptions.c.id == flag)).scalar() is None


def test_idle_logout_after_15_minutes_and_an_absolute_lifetime_of_12_hours(client: TestClient, clock: Clock) -> None:
    assert IDLE_S == 15 * 60 and LIFETIME_S == 12 * 3600
    log_in(client, *VIEWER)
    clock.now += IDLE_S - 5
    assert client.get("/fleet", follow_redirects=False).status_code == 200
    clock.now += IDLE_S - 5
    refresh = client.get("/fleet", headers={"X-Handoff-Refresh": "1"}, follow_redirects=False)
    assert refresh.status_code == 200
    clock.now += 10
    assert client.get("/fleet", follow_redirects=False).status_code == 303, "a refresh kept an idle login alive"
    log_in(client, *VIEWER)
    started = clock.now
    while clock.now + 600 < started + LIFETIME_S:
        clock.now += 600
        assert client.get("/exceptions", follow_redirects=False).status_code == 200
    clock.now = started + LIFETIME_S + 1
    assert client.get("/exceptions", follow_redirects=False).status_code == 303


def test_only_an_admin_acknowledges_and_the_audit_table_says_who_and_when(
    client: TestClient, clock: Clock, ledger: tuple[Path, Engine]
) -> None:
    with ledger[1].begin() as conn:
        flag = conn.execute(
            insert(exceptions).values(
                type="appliance_offline", device_id="WOW-1", source="", key="WOW-1", opened=T0, detail="silent"
            )
        ).inserted_primary_key[0]
    log_in(client, *VIEWER)
    page = client.get("/exceptions")
    assert "Acknowledge</button>" not in page.text and "Only an admin" in page.text
    refused = client.post(f"/exceptions/{flag}/acknowledge", data={"csrf": csrf_of(page.text)})
    assert refused.status_code == 403 and "only an admin" in refused.text
    log_in(client, *ADMIN)
    page = client.get("/exceptions")
    clock.now += 42
    done = client.post(f"/exceptions/{flag}/acknowledge", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert done.status_code == 303
    with ledger[1].connect() as conn:
        row = conn.execute(select(exceptions).where(exceptions.c.id == flag)).one()
        assert (row.acked_by, row.acked_at) == (ADMIN[0], clock.now)
        logged = conn.execute(select(audit_log).where(audit_log.c.action == "exception_acknowledged")).all()
    assert any(entry.actor == ADMIN[0] and f"#{flag}" in entry.detail for entry in logged)
    assert f"by <bdi>{ADMIN[0]}</bdi> at" in client.get("/exceptions").text


def test_logout_ends_the_session_for_good(client: TestClient) -> None:
    log_in(client, *VIEWER)
    token = client.cookies.get("__Host-handoff-session")
    page = client.get("/fleet")
    out = client.post("/logout", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert token
    client.cookies.clear()
    client.cookies.set("__Host-handoff-session", token)
    assert client.get("/fleet", follow_redirects=False).status_code == 303


def test_every_table_answers_as_csv_and_no_cell_opens_as_a_formula(client: TestClient) -> None:
    log_in(client, *VIEWER)
    for path, header in (
        ("/fleet?format=csv", "device_id,site,state,staff_id"),
        ("/devices/WOW-1?format=csv", "device_id,staff_id,from,to"),
        ("/staff/ana?format=csv", "device_id,staff_id,from,to"),
        ("/exceptions?format=csv", "id,type,device_id"),
        ("/who?device=WOW-1&at=2027-01-15T08:00:00Z&format=csv", "device_id,at,staff_id"),
    ):
        response = client.get(path)
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv"), path
        assert response.text.startswith(header), path
    fleet = client.get("/fleet?format=csv").text
    assert "'=cmd|x" in fleet and ",=cmd" not in fleet


def test_a_bad_time_or_an_unknown_device_is_a_page_not_a_traceback(client: TestClient) -> None:
    log_in(client, *VIEWER)
    bad = client.get("/who?device=WOW-1&at=yesterday")
    assert bad.status_code == 400 and "at: 'yesterday' is not a time" in html.unescape(bad.text)
    assert client.get("/devices/NO-SUCH-CART").status_code == 404
    assert client.get("/devices/WOW-1?since=2027-01-02T00:00:00Z&until=2027-01-01T00:00:00Z").status_code == 400


def test_plain_http_is_allowed_on_loopback_only_and_then_cookies_are_not_secure(
    tmp_path: Path, ledger: tuple[Path, Engine]
) -> None:
    def console(table: dict[str, object]) -> LedgerConfig:
        path = tmp_path / "c.toml"
        path.write_text(
            render_toml({"mqtt": {"url": "mqtt://127.0.0.1:1", "allow_insecure": True}, "console": table}, {})
        )
        return load_ledger_config(path)

    for table, key in (
        ({"listen": "0.0.0.0:8080"}, "console.listen"),
        ({"listen": "0.0.0.0:8080", "allow_insecure": True}, "console.listen"),
        ({"listen": "127.0.0.1:8080", "cert_file": "/x.pem"}, "console.key_file"),
        ({"listen": "8080"}, "console.listen"),
    ):
        with pytest.raises(ConfigError) as refused:
            console(table)
        assert refused.value.key == key, (table, refused.value)
    plain = console({"listen": "127.0.0.1:8080", "allow_insecure": True})
    with TestClient(create_app(plain, ledger[1], Clock()), base_url="http://testserver") as insecure:
        cookie = [
            h
            for h in log_in(insecure, *VIEWER).headers.get_list("set-cookie")  # type: ignore[attr-defined]
            if h.startswith("handoff-session=")
        ]
        assert cookie and "Secure" not in cookie[0] and "HttpOnly" in cookie[0]
        assert "strict-transport-security" not in insecure.get("/fleet").headers


def test_serve_refuses_a_missing_certificate_in_one_line(tmp_path: Path, cli: CliRunner) -> None:
    config = ledger_config(
        tmp_path,
        f"sqlite:///{tmp_path / 'l.db'}",
        1883,
        {"listen": "127.0.0.1:8443", "cert_file": str(tmp_path / "no.pem"), "key_file": str(tmp_path / "no.key")},
    )
    result = cli("ledger", "serve", "-c", config)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "no.pem" in result.stderr and "Traceback" not in result.stderr


def test_pages_show_the_fleet_device_staff_and_who_answers(client: TestClient, ledger: tuple[Path, Engine]) -> None:
    with ledger[1].begin() as conn:
        for seq, (kind, staff, at, reason) in enumerate(
            [("checkout", "ana", T0 - 3600, None), ("checkin", "ana", T0 - 1800, "returned")], start=1
        ):
            conn.execute(
                insert(events).values(
                    id=f"e{seq}", source="urn:handoff:north:r1", seq=seq, type=kind, site="north", device_id="WOW-1",
                    staff_id=staff, session_id="s1", reason=reason, at=at, payload="{}", received=at,
                )
            )  # fmt: skip
        custody.rebuild(conn)  # written here, not by ingest
    log_in(client, *VIEWER)
    fleet = client.get("/fleet?site=north")
    assert "WOW-1" in fleet.text and "<strong>1</strong> in use" in fleet.text
    assert "WOW-1" not in client.get("/fleet?site=south").text.split("<tbody>")[1]
    device = client.get("/devices/WOW-1")
    assert "held by ana from" in words(device) and '<svg viewBox="0 0 960 130"' in device.text
    assert "returned" in device.text
    staff = client.get("/staff/ana")
    assert "/devices/WOW-1" in staff.text
    asked = client.get("/who", params={"device": "WOW-1", "at": "2027-01-15T08:00:00Z"})
    assert "Nobody held WOW-1 then" in words(asked) or "held WOW-1" in words(asked)
    past = client.get("/who", params={"device": "WOW-1", "at": "2027-01-15T07:00:00"})
    assert past.status_code == 200


def test_only_an_admin_reads_the_console_audit_trail(client: TestClient) -> None:
    log_in(client, *VIEWER)
    assert client.get("/audit").status_code == 403
    assert 'href="/audit"' not in client.get("/fleet").text
    log_in(client, *ADMIN)
    trail = client.get("/audit")
    assert (
        trail.status_code == 200
        and f'<th scope="row" data-label="Who"><bdi>{ADMIN[0]}</bdi></th><td data-label="Did">login</td>' in trail.text
    )
    assert client.get("/audit?format=csv").text.startswith("at,actor,action,detail")


def test_a_long_history_is_paged_newest_first_and_the_csv_holds_them_all(
    client: TestClient, ledger: tuple[Path, Engine]
) -> None:
    rows = [
        {
            "id": f"long{n}", "source": "urn:handoff:north:r9", "seq": n + 1,
            "type": "checkout" if n % 2 == 0 else "checkin", "site": "north", "device_id": "WOW-LONG",
            "staff_id": f"s{n // 2}", "session_id": f"x{n // 2}", "reason": None if n % 2 == 0 else "returned",
            "at": T0 - 86400 + n * 60, "payload": "{}", "received": T0,
        }
        for n in range(1200)
    ]  # fmt: skip
    with ledger[1].begin() as conn:
        conn.execute(insert(events), rows)
        custody.rebuild(conn)  # written here, not by ingest
    log_in(client, *VIEWER)
    page = client.get("/devices/WOW-LONG")
    table = page.text.split('id="custody-h"')[1].split("</table>")[0]
    assert table.count('<tr><th scope="row"') == 200 and "600 custody intervals in this window" in table
    assert table.index(">s599<") < table.index(">s400<"), "newest first"
    assert "<title>600 custody intervals, too short to draw one by one" in page.text, "one grey bar, counted"
    assert "<title>600 sessions, too short to draw one by one" in page.text
    assert ">s399<" not in table and 'href="/devices/WOW-LONG?page=2" rel="next"' in page.text
    assert client.get("/devices/WOW-LONG?format=csv").text.count("\n") == 601


def test_an_id_no_row_can_have_is_no_such_exception_not_a_failure(client: TestClient) -> None:
    log_in(client, *ADMIN)
    token = csrf_of(client.get("/exceptions").text)
    for flag in ("99999999999999999999999", "9223372036854775808", "-1", "١٢", "1e3"):
        refused = client.post(f"/exceptions/{flag}/acknowledge", data={"csrf": token})
        assert refused.status_code == 404, (flag, refused.text[:300])


def test_every_error_page_carries_the_same_security_headers(ledger: tuple[Path, Engine], tmp_path: Path) -> None:
    config = load_ledger_config(ledger[0])
    headers = ("content-security-policy", "x-frame-options", "x-content-type-options", "referrer-policy")
    with TestClient(create_app(config, ledger[1], Clock()), base_url="https://testserver") as client:
        log_in(client, *VIEWER)
        expected = {name: client.get("/fleet").headers[name] for name in (*headers, "strict-transport-security")}
        answers = {
            404: client.get("/no-such-page"),
            405: client.get("/logout"),
            413: client.post("/login", content=b"name=" + b"x" * 20_000, headers={"content-type": FORM}),
        }
    unmigrated = create_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    with TestClient(
        create_app(config, unmigrated, Clock()), base_url="https://testserver", raise_server_exceptions=False
    ) as broken:
        broken.cookies.set("__Host-handoff-session", "a" * 43)
        answers[500] = broken.get("/fleet")
        answers[503] = log_in(broken, *VIEWER)
    for status, response in answers.items():
        assert response.status_code == status, (status, response.text[:300])
        assert {name: response.headers.get(name) for name in expected} == expected, status
        assert "Traceback" not in response.text and "sqlite" not in response.text.lower(), status


def test_a_client_names_its_address_in_x_forwarded_for_only_through_a_trusted_proxy(
    ledger: tuple[Path, Engine], tmp_path: Path
) -> None:
    """The address the login limit counts is the one the audit trail records."""

    def failed_from(console: dict[str, object], name: str) -> str:
        config = ledger_config(tmp_path, str(ledger[1].url), 1883, console, name=name)
        app = create_app(load_ledger_config(config), ledger[1], Clock())
        with TestClient(app, base_url="https://testserver", client=("127.0.0.1", 40000)) as client:
            client.headers["x-forwarded-for"] = "198.51.100.7"
            assert log_in(client, name, "not a password").status_code == 401
        with ledger[1].connect() as conn:
            return str(conn.execute(select(audit_log.c.detail).where(audit_log.c.actor == name)).scalar_one())

    assert failed_from({}, "sprayed-direct") == "127.0.0.1"
    assert failed_from({"trusted_proxies": ["127.0.0.0/8"]}, "sprayed-proxied") == "198.51.100.7"
    with pytest.raises(ConfigError) as refused:
        load_ledger_config(ledger_config(tmp_path, "sqlite:///x.db", 1883, {"trusted_proxies": ["nginx"]}))
    assert refused.value.key == "console.trusted_proxies" and "'nginx'" in str(refused.value)


def test_a_name_cannot_turn_its_neighbours_around_and_a_long_one_is_cut(
    client: TestClient, ledger: tuple[Path, Engine]
) -> None:
    reversing, huge = "ana\u202eoa", "x" * 60_000
    with ledger[1].begin() as conn:
        for device_id, staff_id in (("WOW-RTL", reversing), ("WOW-HUGE", huge)):
            conn.execute(
                insert(devices).values(
                    device_id=device_id, site="east", state="in_use", staff_id=staff_id, since=T0, last_heard=T0
                )
            )
    log_in(client, *VIEWER)
    fleet = client.get("/fleet?site=east").text
    assert f"<bdi>{reversing}</bdi>" in fleet
    assert f'<bdi title="{huge}">{huge[:64]}…</bdi>' in fleet
    visible = re.sub(r"<[^>]*>", "", fleet)
    assert f"{huge[:64]}…" in visible and huge not in visible
    assert "bdi { unicode-bidi: isolate; }" in client.get("/static/console.css").text


def test_a_local_time_is_read_in_the_browsers_zone_and_csv_stays_utc(client: TestClient) -> None:
    log_in(client, *VIEWER)
    asked = {"device": "WOW-1", "format": "csv"}
    in_paris = client.get("/who", params={**asked, "at": "2027-07-15T10:00:00", "tz": "Europe/Paris"}).text
    in_utc = client.get("/who", params={**asked, "at": "2027-07-15T08:00:00Z"}).text
    assert in_paris == in_utc and ",2027-07-15T08:00:00" in in_utc
    for zone in ("Mars/Olympus", "../../etc/passwd", "/etc/localtime"):
        refused = client.get("/who", params={"device": "WOW-1", "at": "2027-07-15T10:00:00", "tz": zone})
        assert refused.status_code == 400 and "is not a time zone" in refused.text, zone
    page = client.get("/who", params={"device": "WOW-1", "at": "2027-07-15T10:00:00", "tz": "Europe/Paris"}).text
    assert '<time datetime="2027-07-15T08:00:00Z">2027-07-15 08:00:00 +00:00</time>' in page
    assert 'type="datetime-local"' in page and 'data-utc="2027-07-15T08:00:00Z"' in page
    assert '<script src="/static/localtime.js" defer></script>' in page
    assert "getTimezoneOffset" in client.get("/static/localtime.js").text
