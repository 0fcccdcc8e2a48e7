"""Sign-in through OpenID Connect, against a real, OpenID-certified provider (the `oidc-provider`
npm package on Node, on loopback: tests/kit/oidc.py), in a real headless Chromium, to a real
`handoff ledger serve`: success with the mapped role, an ID token for another audience, a code
replayed or expired, and people whose claims give no role, each refused with a page that says so."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from playwright.sync_api import BrowserContext, Page, Request, expect
from sqlalchemy import create_engine, select, text

from handoff.ledger.accounts import listed
from handoff.ledger.config import load_ledger_config
from handoff.ledger.console.logins import Accounts
from handoff.ledger.database import engine_for
from handoff.ledger.oidc_accounts import role_for
from handoff.ledger.schema import audit_log
from handoff.testing.net import free_tcp_port
from tests.kit.axe import violations
from tests.kit.browser import chromium, screenshot_path
from tests.kit.ledger import Console, ledger_command, ledger_config, sqlite_ledger
from tests.kit.oidc import CLIENT_ID, Provider, client_secret_file, oidc_provider

NAME = "Hospital ID"
ROLES = {"biomed-admins": "admin", "ward-viewers": "viewer"}
GROUPS = {"ana": ["staff", "biomed-admins"], "bo": ["ward-viewers"], "dee": ["cafeteria"]}
"""Each login name's `groups` claim at the provider; "cy" has none at all."""


@contextmanager
def signing_in(root: Path, database: str, **provider: object) -> Iterator[tuple[Console, Provider]]:
    """The console configured for the provider, and the provider with the console registered."""
    port = free_tcp_port()
    oidc = {
        "name": NAME,
        "issuer": f"http://127.0.0.1:{port}",
        "client_id": CLIENT_ID,
        "client_secret_file": str(client_secret_file(root)),
        "roles_claim": "groups",
        "scopes": ["openid", "profile", "groups"],
        "roles": ROLES,
    }
    console = Console(root, database, free_tcp_port(), oidc=oidc)
    callback, back = f"{console.url}/login/oidc/callback", f"{console.url}/login"
    with (
        oidc_provider(root, [callback], GROUPS, port=port, post_logout_redirect_uris=[back], **provider) as running,  # type: ignore[arg-type]
        console,
    ):
        yield console, running


@contextmanager
def browsing() -> Iterator[tuple[BrowserContext, Page]]:
    with chromium() as browser:
        context = browser.new_context(bypass_csp=True)  # for axe-core's injected script
        # The provider's development pages import a web font; nothing leaves this machine.
        context.route(re.compile(r"^https://fonts\."), lambda route: route.abort())
        yield context, context.new_page()


def at_the_provider(page: Page, console: Console, login: str) -> None:
    """From the console's login page to the provider's, signed in there as `login`, up to consent."""
    page.goto(f"{console.url}/fleet")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Ffleet$"))
    page.get_by_role("link", name=f"Sign in with {NAME}").click()
    page.locator("input[name=login]").fill(login)
    page.locator("input[name=password]").fill("any password: the development pages take any")
    page.get_by_role("button", name="Sign-in").click()
    expect(page.get_by_role("button", name="Continue")).to_be_visible()


def returning(request: Request) -> bool:
    """The browser's request that brings the provider's code back to the console."""
    return "/login/oidc/callback?" in request.url


def refused(page: Page, why: str, *, signed_out: bool = True) -> None:
    """The refusal page says `why`; and, for a browser not signed in before, it still is not."""
    expect(page.get_by_role("heading", name="Sign-in refused")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text(why)
    if signed_out:
        page.goto(page.url.split("/login/oidc")[0] + "/fleet")
        expect(page).to_have_url(re.compile(r"/login\?next=")), "a refused sign-in left a session"


def trail(database: str) -> list[tuple[str, str, str]]:
    engine = engine_for(database)
    with engine.connect() as conn:
        rows = [(r.actor, r.action, r.detail) for r in conn.execute(select(audit_log).order_by(audit_log.c.id))]
    engine.dispose()
    return rows


def users(console: Console) -> dict[str, dict[str, object]]:
    listed = ledger_command(console.config, "users", "list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    return {row["name"]: row for row in json.loads(listed.stdout)}


def test_a_provider_sign_in_lands_in_the_console_with_the_mapped_role(tmp_path: Path, database: str) -> None:
    with signing_in(tmp_path, database) as (console, provider), browsing() as (_, page):
        page.goto(f"{console.url}/login")
        expect(page.get_by_role("link", name=f"Sign in with {NAME}")).to_be_visible()
        assert violations(page) == [], "the login page"
        page.screenshot(path=screenshot_path("oidc-login"), full_page=True)
        at_the_provider(page, console, "ana")
        page.get_by_role("button", name="Continue").click()
        expect(page).to_have_url(f"{console.url}/fleet")
        expect(page.locator("form.logout")).to_contain_text("ana (admin)")
        expect(page.get_by_role("link", name="Accounts")).to_be_visible()
        page.screenshot(path=screenshot_path(f"oidc-signed-in-{database.split(':', maxsplit=1)[0]}"), full_page=True)

        account = users(console)["ana"]
        assert (account["role"], account["source"], account["status"]) == ("admin", "oidc", "enabled")
        assert ("oidc", "user_added", "ana (admin, OpenID Connect)") in trail(database)
        assert ("ana", "login", "127.0.0.1 (OpenID Connect)") in trail(database)

        page.get_by_role("link", name="Your account").click()
        expect(page.get_by_text("Your account signs in through OpenID Connect")).to_be_visible()
        assert not page.get_by_role("button", name="Turn on two-step login").count()
        for refused_change in (("role", "ana", "viewer"), ("totp", "ana")):
            said = ledger_command(console.config, "users", *refused_change)
            assert said.returncode == 2 and "set at the provider" in said.stderr, said.stderr

        provider.set_groups({**GROUPS, "ana": ["ward-viewers"]})  # moved to another group at the provider
        with page.expect_request(lambda asked: asked.url.startswith(provider.issuer)) as ending:
            page.get_by_role("button", name="Log out").click()
        asked = parse_qs(urlsplit(ending.value.url).query)
        assert asked["post_logout_redirect_uri"] == [f"{console.url}/login"] and asked["client_id"] == [CLIENT_ID]
        assert asked["id_token_hint"][0].count(".") == 2, "the ID token the console was given at sign-in"
        page.get_by_role("button", name="Yes, sign me out").click()  # the provider's own confirmation
        expect(page).to_have_url(f"{console.url}/login")
        page.get_by_role("link", name=f"Sign in with {NAME}").click()
        expect(page.locator("input[name=login]")).to_be_visible(), "signed out at the provider too"
        page.locator("input[name=login]").fill("ana")
        page.locator("input[name=password]").fill("any password: the development pages take any")
        page.get_by_role("button", name="Sign-in").click()
        consent, signed_in = page.get_by_role("button", name="Continue"), page.locator("form.logout")
        expect(consent.or_(signed_in)).to_be_visible()
        if consent.is_visible():
            consent.click()
        expect(page).to_have_url(f"{console.url}/fleet")
        expect(signed_in).to_contain_text("ana (viewer)")
        assert ("oidc", "user_role", "ana (viewer, from the provider)") in trail(database)

        assert ledger_command(console.config, "users", "disable", "ana").returncode == 0
        page.goto(f"{console.url}/fleet")
        expect(page).to_have_url(re.compile(r"/login\?next=%2Ffleet$")), "a disabled account's next request"
        page.get_by_role("link", name=f"Sign in with {NAME}").click()  # still signed in at the provider
        refused(page, "'ana' is disabled in the ledger")


def test_an_id_token_for_another_audience_is_refused(tmp_path: Path) -> None:
    """The forger: a token the provider really signed, but for another application."""
    database = sqlite_ledger(tmp_path / "ledger.db")
    with signing_in(tmp_path, database, forge_audience="another-app") as (console, _), browsing() as (_, page):
        at_the_provider(page, console, "ana")
        page.get_by_role("button", name="Continue").click()
        expect(page.get_by_role("alert")).to_contain_text("did not verify")
        refused(page, "Invalid claim: 'aud'")
    assert "ana" not in users(console)
    assert [d for _, action, d in trail(database) if action == "login_refused" and "'aud'" in d]


def test_a_replayed_or_expired_code_is_refused(tmp_path: Path) -> None:
    """A code seen on its way back (the redirect and the flow's cookie copied to another browser)
    is good once; a code held back past its lifetime is good never."""
    database = sqlite_ledger(tmp_path / "ledger.db")
    code_ttl_s = 2
    with signing_in(tmp_path, database, code_ttl_s=code_ttl_s) as (console, _), chromium() as browser:
        first = browser.new_context()
        first.route(re.compile(r"^https://fonts\."), lambda route: route.abort())
        page = first.new_page()
        at_the_provider(page, console, "bo")
        flow = [cookie for cookie in first.cookies() if cookie["name"] == "handoff-oidc"]
        assert flow, first.cookies()
        with page.expect_request(returning) as sent:
            page.get_by_role("button", name="Continue").click()
        expect(page).to_have_url(f"{console.url}/fleet")
        expect(page.locator("form.logout")).to_contain_text("bo (viewer)")

        page.goto(sent.value.url)
        refused(page, "mismatching_state", signed_out=False)

        other = browser.new_context()
        other.add_cookies(flow)  # type: ignore[arg-type]
        stolen = other.new_page()
        stolen.goto(sent.value.url)
        refused(stolen, "invalid_grant")

        # Held back: the console is down when the code comes (a redirect cannot be intercepted),
        # and up again after the code expired; the flow's cookie outlives a console restart.
        late = browser.new_context().new_page()
        at_the_provider(late, console, "bo")
        console.stop()
        with late.expect_request(returning) as held:
            late.get_by_role("button", name="Continue").click()
        time.sleep(code_ttl_s + 1)  # what is awaited is the code's expiry at the provider
        console.start()
        late.goto(held.value.url)
        refused(late, "invalid_grant")


@pytest.mark.parametrize("login", ["cy", "dee"])
def test_a_person_whose_claims_give_no_role_is_refused(tmp_path: Path, login: str) -> None:
    """cy has no `groups` claim at all; dee has one, with no value the console maps to a role."""
    database = sqlite_ledger(tmp_path / "ledger.db")
    with signing_in(tmp_path, database) as (console, _), browsing() as (_, page):
        at_the_provider(page, console, login)
        page.get_by_role("button", name="Continue").click()
        expect(page.get_by_text(f"add you at {NAME} to a group that gives a console role")).to_be_visible()
        assert violations(page) == [], "the refusal page"
        page.screenshot(path=screenshot_path(f"oidc-refused-{login}"), full_page=True)
        refused(page, f"{login} has no 'groups' value that gives a console role")
    assert login not in users(console)
    assert [d for _, action, d in trail(database) if action == "login_refused" and login in d]


def test_roles_come_from_a_claim_that_is_a_value_or_a_list() -> None:
    assert role_for({"groups": ["staff", "ward-viewers", "biomed-admins"]}, "groups", ROLES) == "admin"
    assert role_for({"groups": "ward-viewers"}, "groups", ROLES) == "viewer"
    assert role_for({"roles": ["biomed-admins"]}, "groups", ROLES) is None
    assert role_for({"groups": ["Biomed-Admins", 7, None]}, "groups", ROLES) is None


@pytest.mark.parametrize(
    ("oidc", "said"),
    [
        ({"issuer": "http://idp.example.org"}, "oidc.issuer"),
        ({"roles": {"biomed-admins": "superuser"}}, "oidc.roles"),
        ({"roles": {"biomed-admins": 3}}, "oidc.roles.biomed-admins must be a string, got an integer (3)"),
        ({"scopes": ["profile"]}, "oidc.scopes"),
    ],
)
def test_bad_oidc_settings_are_one_line_and_exit_2(tmp_path: Path, oidc: dict[str, object], said: str) -> None:
    table = {
        "name": NAME,
        "issuer": "https://idp.example.org",
        "client_id": CLIENT_ID,
        "client_secret_file": str(client_secret_file(tmp_path)),
        "roles": ROLES,
        **oidc,
    }
    config = ledger_config(tmp_path, sqlite_ledger(tmp_path / "ledger.db"), 1883, oidc=table)
    result = ledger_command(config, "serve")
    assert result.returncode == 2 and said in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_client_secret_others_may_read_is_refused_at_start(tmp_path: Path) -> None:
    secret = client_secret_file(tmp_path)
    secret.chmod(0o644)
    table = {"name": NAME, "issuer": "https://idp.example.org", "client_id": CLIENT_ID, "roles": ROLES}
    config = ledger_config(
        tmp_path, sqlite_ledger(tmp_path / "ledger.db"), 1883, oidc={**table, "client_secret_file": str(secret)}
    )
    assert load_ledger_config(config).oidc is not None
    result = ledger_command(config, "serve")
    assert result.returncode == 2, result.stderr
    assert f"oidc.client_secret_file: {secret} is readable or writable by others" in result.stderr


def test_accounts_from_before_the_upgrade_stay_local_with_their_password(database: str) -> None:
    """A ledger at the console's previous schema: its accounts keep logging in with their
    passwords, and are listed as local, after the upgrade that brings OpenID Connect accounts."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(files("handoff.ledger") / "migrations"))
    old = create_engine(database.replace("postgresql://", "postgresql+psycopg://", 1))
    with old.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0005")
        conn.execute(
            text("INSERT INTO users (name, role, password_hash, created) VALUES ('ines', 'admin', :hash, 0)"),
            {"hash": Accounts().hash("a long admin passphrase")},
        )
    old.dispose()
    engine = engine_for(database)
    with engine.connect() as conn:
        (account,) = listed(conn)
        stored = Accounts().stored(conn, "ines")
    engine.dispose()
    assert (account.name, account.source, account.second_factor) == ("ines", "local", False)
    assert Accounts().verify(stored, "a long admin passphrase").role == "admin"
