"""TOTP enrolment in the console, in a real headless Chromium against a real `handoff ledger
serve`: a local account turns it on from its own page (QR code drawn on the server, confirmed
with a code before it counts, recovery codes shown once), then logs in with a code and with a
recovery code (good once); an admin turns it off for them."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pyotp
from playwright.sync_api import Page, expect
from sqlalchemy import select

from handoff.ledger.database import engine_for
from handoff.ledger.schema import audit_log
from handoff.testing.net import free_tcp_port
from tests.kit.axe import violations
from tests.kit.browser import chromium, screenshot_path
from tests.kit.ledger import Console, sqlite_ledger

NURSE = ("ward-nurse", "a long nurse passphrase")
ADMIN = ("biomed-lead", "a long admin passphrase")


def log_in(page: Page, console: Console, who: tuple[str, str], code: str = "") -> None:
    page.goto(f"{console.url}/login")
    page.get_by_label("Name").fill(who[0])
    page.get_by_label("Password").fill(who[1])
    page.get_by_label("One-time code, if your account has one").fill(code)
    page.get_by_role("button", name="Log in").click()


def logged_in(page: Page, console: Console, who: tuple[str, str]) -> None:
    expect(page).to_have_url(f"{console.url}/fleet")
    expect(page.locator("form.logout")).to_contain_text(who[0])
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(f"{console.url}/login")


def refused(page: Page) -> None:
    expect(page.get_by_role("alert")).to_have_text("Wrong name, password or one-time code.")


def test_enrol_then_log_in_with_a_code_and_a_recovery_code_once(tmp_path: Path) -> None:
    database = sqlite_ledger(tmp_path / "ledger.db")
    with Console(tmp_path, database, free_tcp_port()) as console, chromium() as browser:
        console.add_user(*NURSE[:1], "viewer", NURSE[1])
        console.add_user(*ADMIN[:1], "admin", ADMIN[1])
        page = browser.new_context(bypass_csp=True).new_page()  # for axe-core's injected script
        log_in(page, console, NURSE)
        expect(page).to_have_url(f"{console.url}/fleet")
        page.get_by_role("link", name="Your account").click()
        expect(page.get_by_text("Off: your password alone logs you in.")).to_be_visible()
        assert violations(page) == [], "the account page"
        page.get_by_label("Your password, again").fill("not the password")
        page.get_by_role("button", name="Turn on two-step login").click()
        expect(page.get_by_role("alert")).to_contain_text("That password is not right")  # a session left open
        page.get_by_label("Your password, again").fill(NURSE[1])
        page.get_by_role("button", name="Turn on two-step login").click()

        expect(page.locator("figure.qr svg title")).to_have_text("QR code to scan")
        assert violations(page) == [], "the enrolment page"
        page.screenshot(path=screenshot_path("totp-enrolment"), full_page=True)
        secret = page.locator("code.secret").inner_text().replace(" ", "")
        totp = pyotp.TOTP(secret)

        page.get_by_label("Code from the app").fill("000000" if totp.now() != "000000" else "111111")
        page.get_by_role("button", name="Confirm and turn on").click()
        expect(page.get_by_role("alert")).to_contain_text("does not match")
        page.get_by_role("button", name="Log out").click()
        log_in(page, console, NURSE)
        logged_in(page, console, NURSE)  # pending, not yet in force: the password alone still logs in

        log_in(page, console, NURSE)
        page.get_by_role("link", name="Your account").click()
        page.get_by_label("Your password, again").fill(NURSE[1])
        page.get_by_role("button", name="Turn on two-step login").click()
        secret = page.locator("code.secret").inner_text().replace(" ", "")
        totp = pyotp.TOTP(secret)
        confirmed_at = time.time()
        page.get_by_label("Code from the app").fill(totp.at(confirmed_at))
        page.get_by_role("button", name="Confirm and turn on").click()
        expect(page.get_by_role("heading", name="Two-step login is on")).to_be_visible()
        codes = page.locator("ul.recovery code").all_inner_texts()
        assert len(codes) == 10 and all(re.fullmatch(r"[0-9a-f]{6}-[0-9a-f]{6}", code) for code in codes), codes
        assert violations(page) == [], "the recovery codes page"
        page.goto(f"{console.url}/account")
        expect(page.get_by_text("On: logging in asks for a code")).to_be_visible()
        assert not page.locator("ul.recovery").count(), "recovery codes shown a second time"
        page.get_by_role("button", name="Log out").click()

        log_in(page, console, NURSE)
        refused(page)  # the password alone
        log_in(page, console, NURSE, totp.at(confirmed_at))
        refused(page)  # the code that confirmed the enrolment is spent
        log_in(page, console, NURSE, totp.at(confirmed_at + 30))  # the next step's: clocks drift
        logged_in(page, console, NURSE)
        log_in(page, console, NURSE, codes[4])
        logged_in(page, console, NURSE)
        log_in(page, console, NURSE, codes[4])
        refused(page)  # a recovery code is good once

        admin = browser.new_context().new_page()
        log_in(admin, console, ADMIN)
        admin.goto(f"{console.url}/users")
        admin.get_by_role("button", name=f"Turn off two-step login for {NURSE[0]}").click()
        expect(admin.get_by_role("status")).to_contain_text("two-step login is off")
        log_in(page, console, NURSE)
        logged_in(page, console, NURSE)

    engine = engine_for(database)
    with engine.connect() as conn:
        trail = [(r.actor, r.action, r.detail) for r in conn.execute(select(audit_log).order_by(audit_log.c.id))]
    engine.dispose()
    assert (NURSE[0], "user_totp_enrolled", NURSE[0]) in trail
    assert (NURSE[0], "recovery_code_used", "9 left") in trail
    assert (ADMIN[0], "user_totp_reset", NURSE[0]) in trail
