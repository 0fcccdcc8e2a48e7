"""A TOTP second factor (RFC 6238) for a local account: enrolled by `handoff ledger users totp`
(a real process), then logins to the real console application over a real SQLite ledger, with
codes computed by pyotp at the console's clock, which the test holds."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from handoff.ledger import accounts
from handoff.ledger.config import load_ledger_config
from handoff.ledger.console.app import create_app
from handoff.ledger.database import engine_for
from handoff.ledger.schema import audit_log, users
from tests.kit.console import T0, Clock, csrf_of
from tests.kit.ledger import ledger_command, ledger_config, sqlite_ledger

ADMIN = ("security-officer", "a long admin passphrase")


@pytest.fixture
def enrolled(tmp_path: Path) -> Iterator[tuple[Path, Engine, str, list[str]]]:
    config = ledger_config(tmp_path, sqlite_ledger(tmp_path / "ledger.db"), 1883)
    engine = engine_for(load_ledger_config(config).ledger.database)
    with engine.begin() as conn:
        accounts.add(conn, T0, "test", ADMIN[0], "admin", PasswordHasher().hash(ADMIN[1]))
    made = ledger_command(config, "users", "totp", ADMIN[0])
    assert made.returncode == 0, made.stderr
    found = re.search(r"otpauth://totp/[^?]+\?secret=([A-Z2-7]+)&issuer=handoff%20ledger", made.stdout)
    assert found, made.stdout
    codes = re.findall(r"^  ([0-9a-f]{6}-[0-9a-f]{6})$", made.stdout, re.MULTILINE)
    assert len(codes) == 10
    yield config, engine, found.group(1), codes
    engine.dispose()


def attempt(client: TestClient, code: str) -> int:
    form = client.get("/login")
    fields = {"csrf": csrf_of(form.text), "name": ADMIN[0], "password": ADMIN[1], "code": code, "next": "/fleet"}
    return client.post("/login", data=fields, follow_redirects=False).status_code


def test_a_login_needs_the_code_once_and_a_recovery_code_once(enrolled: tuple[Path, Engine, str, list[str]]) -> None:
    config, engine, secret, codes = enrolled
    clock = Clock()
    with TestClient(create_app(load_ledger_config(config), engine, clock), base_url="https://testserver") as client:
        assert attempt(client, "") == 401, "the password alone let a TOTP account in"
        code = pyotp.TOTP(secret).at(clock.now)
        assert attempt(client, code) == 303
        assert attempt(client, code) == 401, "a code was accepted twice"
        clock.now += 30
        assert attempt(client, pyotp.TOTP(secret).at(clock.now)) == 303, "the next step's code"
        clock.now += 30
        assert attempt(client, pyotp.TOTP(secret).at(clock.now - 30)) == 401, "an older step after a newer one"
        assert attempt(client, codes[3].upper()) == 303
        assert attempt(client, codes[3]) == 401, "a recovery code was good twice"
    with engine.connect() as conn:
        left = conn.execute(select(users.c.recovery_codes).where(users.c.name == ADMIN[0])).scalar_one()
        trail = [(r.action, r.detail) for r in conn.execute(select(audit_log).order_by(audit_log.c.id))]
    assert codes[0] not in left and left.count('"') == 2 * 9, "recovery codes are kept as digests, one spent"
    assert ("user_totp_enrolled", ADMIN[0]) in trail and ("recovery_code_used", "9 left") in trail
    assert sum(detail.endswith("(one-time code)") for action, detail in trail if action == "login_failed") == 4


def test_guessing_codes_runs_into_the_login_limit(enrolled: tuple[Path, Engine, str, list[str]]) -> None:
    config, engine, secret, _ = enrolled
    clock = Clock()
    with TestClient(create_app(load_ledger_config(config), engine, clock), base_url="https://testserver") as client:
        for guess in ("000000", "111111", "222222", "333333", "444444"):
            assert attempt(client, guess) == 401
        assert attempt(client, pyotp.TOTP(secret).at(clock.now)) == 429, "the right code after 5 guesses"
