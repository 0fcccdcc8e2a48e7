"""The console in a real headless Chromium, served by a real `handoff ledger serve` (uvicorn,
over TLS with a hospital-style CA) on a ledger fed by a real appliance with simulated badges
through a real mosquitto, on SQLite and on PostgreSQL (docs/console.md).

Screenshots of the fleet and device pages are left in test-output/console/ for a person."""

from __future__ import annotations

import math
import re
import signal
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from playwright.sync_api import Page, expect
from sqlalchemy import select

from handoff.ledger.database import engine_for
from handoff.ledger.schema import devices, exceptions
from tests.kit.appliance import ANA, BO, Running
from tests.kit.axe import violations
from tests.kit.broker import Broker
from tests.kit.browser import chromium, screenshot_path
from tests.kit.cli import CliRunner
from tests.kit.config import DEVICE, Layout
from tests.kit.ledger import Console, Ledger, audit_key, enrol_key, ledger_config
from tests.kit.pki import make_ca, server_certificate
from tests.kit.wait import wait_for

ZONE = "Europe/Paris"
"""The browser's zone: the console shows times, and reads the times typed in, there."""
ADMIN, VIEWER = ("biomed-lead", "a long admin passphrase"), ("ward-clerk", "a long viewer passphrase")


def log_in(page: Page, base: str, name: str, password: str) -> None:
    page.goto(f"{base}/fleet")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Ffleet$"))
    page.get_by_label("Name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{base}/fleet")


def log_out(page: Page, base: str) -> None:
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(f"{base}/login")
    page.goto(f"{base}/fleet")
    expect(page).to_have_url(re.compile(r"/login\?next="))


def test_a_shift_seen_in_the_console(
    appliance: Layout, cli: CliRunner, tmp_path: Path, database: str, request: object
) -> None:
    engine = engine_for(database)
    cert, key = server_certificate(make_ca(), tmp_path / "tls")
    signing_file, signing_key = audit_key(tmp_path)
    enrol_key(engine, DEVICE, signing_key.public_key())
    with Broker(tmp_path / "broker") as broker:
        ledger = Ledger(ledger_config(tmp_path, database, broker.port), tmp_path / "ledger.log")
        ledger.start()
        cart = Running(appliance, broker, cli, {"retap_guard_s": 0.5}, audit={"key_file": str(signing_file)})
        try:
            cart.tap(ANA)
            (checkout,) = cart.events.wait_for_count(lambda m: "/events/" in m.topic, 1)
            # The form takes whole seconds: the first one after Ana's checkout, and Bo's tap after it.
            ana_held_at = float(math.floor(datetime.fromisoformat(checkout.json()["time"]).timestamp()) + 1)
            time.sleep(max(0.0, ana_held_at + 0.3 - time.time()))
            cart.tap(BO)
            assert [kind for kind, _, _ in cart.event_types(4)][-1] == "org.handoff.checkout"

            def bo_holds() -> bool:
                with engine.connect() as conn:
                    row = conn.execute(select(devices.c.staff_id).where(devices.c.device_id == DEVICE)).first()
                return row is not None and row.staff_id == "bo"

            assert wait_for(bo_holds), "the ledger never saw bo's checkout"
            console = Console(tmp_path, database, broker.port, tls=(cert, key))
            console.add_user(*ADMIN[:1], "admin", ADMIN[1])
            console.add_user(*VIEWER[:1], "viewer", VIEWER[1])
            engine_name = database.split(":", 1)[0]
            with console, chromium() as browser:
                context = browser.new_context(
                    ignore_https_errors=True,
                    viewport={"width": 1280, "height": 900},
                    timezone_id=ZONE,
                    bypass_csp=True,  # for axe-core's injected script; tests/test_console.py checks the CSP
                )
                page = context.new_page()
                page.clock.install()
                base = console.url
                log_in(page, base, *ADMIN)
                row = page.get_by_role("row").filter(has=page.get_by_role("link", name=DEVICE))
                expect(row).to_contain_text("bo")
                expect(row).to_contain_text("in use")
                expect(row).to_contain_text("online")
                expect(page.locator(".counts")).to_contain_text("1 in use")
                page.screenshot(path=screenshot_path(f"fleet-{engine_name}"), full_page=True)
                for path in ("/fleet", f"/devices/{DEVICE}", "/staff/ana", "/exceptions", "/who", "/users", "/audit"):
                    page.goto(f"{base}{path}")
                    assert violations(page) == [], path
                page.goto(f"{base}/fleet")

                page.get_by_role("link", name=DEVICE).click()
                expect(page.get_by_role("heading", level=1)).to_have_text(f"Device {DEVICE}")
                bars = page.locator("svg rect.custody")
                expect(bars).to_have_count(2)
                expect(page.locator("svg")).to_contain_text("ana")
                custody = page.get_by_role("table").first
                expect(custody).to_contain_text("handoff")
                expect(custody).to_contain_text("still held")
                page.screenshot(path=screenshot_path(f"device-{engine_name}"), full_page=True)
                for width in (768, 390):
                    page.set_viewport_size({"width": width, "height": 900})
                    page.screenshot(path=screenshot_path(f"device-{engine_name}-{width}"), full_page=True)
                    assert page.evaluate("document.documentElement.scrollWidth") <= width, f"sideways at {width} px"
                page.set_viewport_size({"width": 1280, "height": 900})

                page.get_by_role("link", name="Who had it?").click()
                page.get_by_label("Device").fill(DEVICE)
                local = datetime.fromtimestamp(ana_held_at, ZoneInfo(ZONE))
                page.get_by_label(re.compile("^At")).fill(local.strftime("%Y-%m-%dT%H:%M:%S"))
                page.get_by_role("button", name="Ask").click()
                expect(page.locator("#who-answer")).to_have_text(re.compile(rf"^ana held {DEVICE}, logged in, since "))
                offset = local.strftime("%z")
                expect(page.locator("#who-answer time")).to_contain_text(f" {offset[:3]}:{offset[3:]}")
                typed = re.compile(rf"^{local.strftime('%Y-%m-%dT%H:%M')}(:{local.strftime('%S')})?$")
                expect(page.get_by_label(re.compile("^At"))).to_have_value(typed)

                page.get_by_role("link", name="Fleet").click()
                cart.stop()
                assert wait_for(lambda: offline_flag(engine) is not None, 30), "no appliance_offline exception"
                expect(row).to_contain_text("online")
                page.clock.run_for(16_000)
                expect(row).to_contain_text("offline")
                expect(page.locator(".counts")).to_contain_text("1 appliances offline")
                log_out(page, base)

                log_in(page, base, *VIEWER)
                page.get_by_role("link", name="Exceptions").click()
                expect(page.get_by_role("row").filter(has_text="appliance_offline")).to_contain_text("not yet")
                expect(page.get_by_role("button", name=re.compile("^Acknowledge"))).to_have_count(0)
                csrf = page.locator("form.logout input[name=csrf]").get_attribute("value")
                refused = page.request.post(
                    f"{base}/exceptions/{offline_flag(engine)}/acknowledge", form={"csrf": csrf or ""}
                )
                assert refused.status == 403
                log_out(page, base)

                log_in(page, base, *ADMIN)
                page.get_by_role("link", name="Exceptions").click()
                page.get_by_role("button", name=f"Acknowledge appliance_offline {DEVICE}").click()
                expect(page.get_by_role("row").filter(has_text="appliance_offline")).to_contain_text(
                    f"by {ADMIN[0]} at"
                )
                log_out(page, base)
                context.close()
            with engine.connect() as conn:
                acked = conn.execute(select(exceptions.c.acked_by).where(exceptions.c.id == offline_flag(engine)))
                assert acked.scalar() == ADMIN[0]
        finally:
            if cart.process is not None:
                cart.stop()
            cart.events.close()
            ledger.kill(signal.SIGTERM)
            engine.dispose()


def offline_flag(engine: object) -> int | None:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        found = conn.execute(
            select(exceptions.c.id).where(exceptions.c.type == "appliance_offline", exceptions.c.device_id == DEVICE)
        ).first()
    return None if found is None else int(found.id)
