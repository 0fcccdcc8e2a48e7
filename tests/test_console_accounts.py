"""Accounts, from `handoff ledger users` and from the console's admin page alike: listed, given
a role, disabled, enabled, given a new password; every change audited and in force at the
account's next request. The real application over a real SQLite ledger, in process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from handoff.ledger import accounts
from handoff.ledger.config import load_ledger_config
from handoff.ledger.console.app import create_app
from handoff.ledger.database import engine_for
from handoff.ledger.schema import audit_log
from tests.kit.console import T0, Clock, csrf_of, log_in
from tests.kit.ledger import ledger_command, ledger_config, sqlite_ledger

ADMIN, OTHER = ("chief-biomed", "admin password 1"), ("ward-clerk", "clerk password 1")


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[tuple[Path, Engine]]:
    """Two accounts, made in process (`users add` itself runs in the tests that name it)."""
    config = ledger_config(tmp_path, sqlite_ledger(tmp_path / "ledger.db"), 1883)
    engine = engine_for(load_ledger_config(config).ledger.database)
    with engine.begin() as conn:
        for (name, password), role in ((ADMIN, "admin"), (OTHER, "viewer")):
            accounts.add(conn, T0, "test", name, role, PasswordHasher().hash(password))
    yield config, engine
    engine.dispose()


def console(ledger: tuple[Path, Engine]) -> TestClient:
    return TestClient(create_app(load_ledger_config(ledger[0]), ledger[1], Clock()), base_url="https://testserver")


def trail(engine: Engine) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        return [(r.actor, r.action, r.detail) for r in conn.execute(select(audit_log).order_by(audit_log.c.id))]


def test_the_cli_lists_changes_disables_and_resets_accounts_and_audits_each(ledger: tuple[Path, Engine]) -> None:
    config, engine = ledger
    with console(ledger) as clerk:
        log_in(clerk, *OTHER)
        assert clerk.get("/audit").status_code == 403
        assert ledger_command(config, "users", "role", OTHER[0], "admin").returncode == 0
        assert clerk.get("/audit").status_code == 200, "the new role did not apply at the next request"
        listed = json.loads(ledger_command(config, "users", "list", "--format", "json").stdout)
        assert [(a["name"], a["role"], a["status"], a["sessions"]) for a in listed] == [
            (ADMIN[0], "admin", "enabled", 0),
            (OTHER[0], "admin", "enabled", 1),
        ]
        assert ledger_command(config, "users", "disable", OTHER[0]).returncode == 0
        assert clerk.get("/fleet", follow_redirects=False).status_code == 303, "a disabled account's session lives"
        assert log_in(clerk, *OTHER).status_code == 401, "a disabled account logged in"
        assert "disabled" in ledger_command(config, "users", "list").stdout
        assert ledger_command(config, "users", "enable", OTHER[0]).returncode == 0
        assert log_in(clerk, *OTHER).status_code == 303
        reset = ledger_command(config, "users", "reset", OTHER[0], stdin="a brand new password\n")
        assert reset.returncode == 0, reset.stderr
        assert clerk.get("/fleet", follow_redirects=False).status_code == 303, "a reset left the session alive"
        assert log_in(clerk, *OTHER).status_code == 401
        assert log_in(clerk, OTHER[0], "a brand new password").status_code == 303
    actions = [(actor, action) for actor, action, _ in trail(engine)]
    for action in ("user_role", "user_disabled", "user_enabled", "user_password_reset"):
        assert ("cli", action) in actions, action


def test_the_cli_refuses_what_it_cannot_do_in_one_line(ledger: tuple[Path, Engine]) -> None:
    config, _ = ledger
    for args, stdin, said in (
        (("users", "disable", "nobody-such"), "", "no user 'nobody-such'"),
        (("users", "role", OTHER[0], "root"), "", "invalid choice"),
        (("users", "reset", OTHER[0]), "short\n", "at least 12 characters"),
        (("users", "add", "bad\x1b]0;name", "--role", "viewer"), "long enough password\n", "printable"),
    ):
        refused = ledger_command(config, *args, stdin=stdin)
        assert refused.returncode == 2, (args, refused.stderr)
        assert said in refused.stderr and "Traceback" not in refused.stderr, refused.stderr


def test_an_admin_does_the_same_in_the_console_audited_under_their_name(ledger: tuple[Path, Engine]) -> None:
    _, engine = ledger
    with console(ledger) as admin, console(ledger) as clerk:
        log_in(clerk, *OTHER)
        log_in(admin, *ADMIN)
        page = admin.get("/users")
        assert page.status_code == 200 and "your own account" in page.text
        token = csrf_of(page.text)
        done = admin.post(f"/users/{OTHER[0]}", data={"csrf": token, "action": "role", "role": "admin"})
        assert done.status_code == 200 and f"{OTHER[0]} is now admin" in done.text
        assert clerk.get("/users").status_code == 200
        admin.post(f"/users/{OTHER[0]}", data={"csrf": token, "action": "disable"})
        assert clerk.get("/fleet", follow_redirects=False).status_code == 303
        admin.post(f"/users/{OTHER[0]}", data={"csrf": token, "action": "enable"})
        reset = admin.post(f"/users/{OTHER[0]}", data={"csrf": token, "action": "reset", "password": "set by admin 1"})
        assert reset.status_code == 200
        assert log_in(clerk, OTHER[0], "set by admin 1").status_code == 303
        assert admin.post("/users/nobody-such", data={"csrf": token, "action": "disable"}).status_code == 404
        short = admin.post(f"/users/{OTHER[0]}", data={"csrf": token, "action": "reset", "password": "short"})
        assert short.status_code == 400
    changes = [(actor, action, detail) for actor, action, detail in trail(engine) if action.startswith("user_")]
    assert changes[-4:] == [
        (ADMIN[0], "user_role", f"{OTHER[0]} (admin)"),
        (ADMIN[0], "user_disabled", OTHER[0]),
        (ADMIN[0], "user_enabled", OTHER[0]),
        (ADMIN[0], "user_password_reset", OTHER[0]),
    ]


def test_a_viewer_a_forged_form_and_an_admin_on_their_own_account_change_nothing(
    ledger: tuple[Path, Engine],
) -> None:
    _, engine = ledger
    before = trail(engine)
    with console(ledger) as admin, console(ledger) as clerk:
        log_in(clerk, *OTHER)
        assert clerk.get("/users").status_code == 403
        assert 'href="/users"' not in clerk.get("/fleet").text
        own = csrf_of(clerk.get("/fleet").text)
        assert clerk.post(f"/users/{ADMIN[0]}", data={"csrf": own, "action": "disable"}).status_code == 403
        log_in(admin, *ADMIN)
        token = csrf_of(admin.get("/users").text)
        assert admin.post(f"/users/{OTHER[0]}", data={"action": "disable"}).status_code == 403
        assert admin.post(f"/users/{OTHER[0]}", data={"csrf": own, "action": "disable"}).status_code == 403
        for action in ({"action": "disable"}, {"action": "role", "role": "viewer"}):
            refused = admin.post(f"/users/{ADMIN[0]}", data={"csrf": token, **action})
            assert refused.status_code == 403 and "another admin" in refused.text
        assert (
            admin.post(f"/users/{OTHER[0]}", data={"csrf": token, "action": "role", "role": "root"}).status_code == 400
        )
        assert clerk.get("/fleet", follow_redirects=False).status_code == 200
    assert [entry for entry in trail(engine) if entry[1].startswith("user_")] == [
        entry for entry in before if entry[1].startswith("user_")
    ]
