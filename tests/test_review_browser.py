"""A break-glass use made at a real appliance (a revoked badge held on a simulated NFC reader)
reaches a real `handoff ledger run` through mosquitto, and an admin reviews it in a real headless
Chromium on a real `handoff ledger serve`; the review page and the report page have no axe
violations. On SQLite and PostgreSQL (docs/console.md)."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

from playwright.sync_api import expect
from sqlalchemy import Engine, select

from handoff.ledger.break_glass import KIND
from handoff.ledger.database import engine_for
from handoff.ledger.schema import exceptions
from tests.kit.appliance import CY, HOLD_S, WITH_CY, Running
from tests.kit.axe import violations
from tests.kit.broker import Broker
from tests.kit.browser import chromium, screenshot_path
from tests.kit.cli import CliRunner
from tests.kit.config import DEVICE, Layout
from tests.kit.ledger import Console, Ledger, audit_key, enrol_key, ledger_config
from tests.kit.wait import wait_for

ADMIN = ("charge-nurse", "a long admin passphrase")


def review(engine: Engine) -> tuple[int, float | None] | None:
    with engine.connect() as conn:
        row = conn.execute(select(exceptions.c.id, exceptions.c.closed).where(exceptions.c.type == KIND)).first()
    return None if row is None else (int(row.id), row.closed)


def test_a_break_glass_use_at_the_cart_is_reviewed_in_the_console(
    appliance: Layout, cli: CliRunner, tmp_path: Path, database: str
) -> None:
    engine = engine_for(database)
    signing_file, signing_key = audit_key(tmp_path)
    enrol_key(engine, DEVICE, signing_key.public_key())
    with Broker(tmp_path / "broker") as broker:
        ledger = Ledger(ledger_config(tmp_path, database, broker.port), tmp_path / "ledger.log")
        ledger.start()
        cart = Running(
            appliance,
            broker,
            cli,
            {"retap_guard_s": 0.5, "break_glass_hold_s": HOLD_S},
            audit={"key_file": str(signing_file)},
            directory=WITH_CY,
        )
        try:
            cart.tap(CY, hold=HOLD_S + 1)
            cart.events.wait_for_count(lambda m: m.topic.endswith("/events/checkout"), 1)
            time.sleep(0.6)  # past retap_guard_s, which no event marks
            cart.tap(CY)
            cart.events.wait_for_count(lambda m: m.topic.endswith("/events/checkin"), 1)
            assert wait_for(lambda: review(engine)), "the ledger opened no break_glass_review"
            flag_id = review(engine)[0]  # type: ignore[index]
            console = Console(tmp_path, database, broker.port)
            console.add_user(ADMIN[0], "admin", ADMIN[1])
            with console, chromium() as browser:
                context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
                page = context.new_page()
                page.goto(f"{console.url}/login")
                page.get_by_label("Name").fill(ADMIN[0])
                page.get_by_label("Password").fill(ADMIN[1])
                page.get_by_role("button", name="Log in").click()
                page.get_by_role("link", name="Exceptions").click()
                page.get_by_role("link", name="Review this use").click()
                expect(page).to_have_url(f"{console.url}/exceptions/{flag_id}/review")
                facts = page.locator("dl.facts")
                expect(facts).to_contain_text("cy")
                expect(facts).to_contain_text("revoked")
                expect(facts).to_contain_text(DEVICE)
                expect(facts).to_contain_text("1 of a limit of 2")
                story = page.get_by_role("table")
                for kind in ("break_glass", "checkout", "checkin"):
                    expect(story.get_by_role("rowheader", name=kind)).to_have_count(1)
                assert violations(page) == []
                page.screenshot(path=screenshot_path("break-glass-review"), full_page=True)
                page.get_by_role("button", name="Close as reviewed").click()
                expect(page.get_by_text(re.compile("^Reviewed by"))).to_have_count(0)
                page.get_by_label(re.compile("What was checked")).fill("code blue, bed 4: confirmed with the ward")
                page.get_by_role("button", name="Close as reviewed").click()
                expect(page.locator("main")).to_contain_text(f"Reviewed by {ADMIN[0]}")
                expect(page.locator("main")).to_contain_text("code blue, bed 4")
                assert violations(page) == []
                page.get_by_role("link", name="Report").click()
                expect(page.get_by_role("heading", level=1)).to_have_text("Evidence report")
                expect(page.get_by_role("row", name=re.compile("uses reviewed by an admin"))).to_contain_text("1")
                assert violations(page) == []
                page.screenshot(path=screenshot_path("report"), full_page=True)
                context.close()
            assert review(engine)[1] is not None  # type: ignore[index]
        finally:
            if cart.process is not None:
                cart.stop()
            cart.events.close()
            ledger.kill(signal.SIGTERM)
            engine.dispose()
