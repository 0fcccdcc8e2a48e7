"""Debian's Chromium, headless, driven by Playwright: the console tested the way people use it.

Playwright cannot download its own browser here (nor on a hospital's build box), so it drives
the system one; `make` installs Debian's `chromium`."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from playwright.sync_api import Browser, expect, sync_playwright

from tests.kit.cli import REPO

CHROMIUM: Final = "/usr/bin/chromium"
FLAGS: Final = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
WAIT_MS: Final = 20_000
"""How long `expect` waits for a page to show what a test asks of it: Playwright's 5 s default
was missed on two cores busy with the rest of the suite. The wait ends as soon as the page shows
it, so a longer limit costs nothing when the page is quick."""
expect.set_options(timeout=WAIT_MS)
SCREENSHOTS: Final = REPO / "test-output" / "console"
"""Where the console tests leave screenshots for a person to look at (ignored by git)."""


@contextmanager
def chromium() -> Iterator[Browser]:
    if not shutil.which(CHROMIUM):
        raise RuntimeError(f"{CHROMIUM} is missing: `make setup` installs Debian's chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=list(FLAGS))
        try:
            yield browser
        finally:
            browser.close()


def screenshot_path(name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}.png"
