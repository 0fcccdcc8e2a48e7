"""axe-core (from npm) injected into a Playwright page: WCAG 2.1 A and AA rule violations.

npm installs it once into test-output/node (ignored by git); the page's context must bypass the
console's Content-Security-Policy, which (rightly) refuses the injected script."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any, Final

from playwright.sync_api import Page

from tests.kit.browser import SCREENSHOTS

AXE_VERSION: Final = "4"
PREFIX: Final = SCREENSHOTS.parent / "node"


def axe_script() -> Path:
    script = PREFIX / "node_modules" / "axe-core" / "axe.min.js"
    if not script.is_file():
        PREFIX.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(PREFIX), f"axe-core@{AXE_VERSION}"],
            check=True,
            capture_output=True,
            timeout=300,
        )
    return script


def violations(page: Page) -> list[dict[str, Any]]:
    """Each violated rule on the page as it is now: its id and the first offending elements."""
    page.add_script_tag(path=str(axe_script()))
    found: list[dict[str, Any]] = page.evaluate(
        """async () => (await axe.run(document, {runOnly: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}))
            .violations.map(v => ({id: v.id, nodes: v.nodes.slice(0, 3).map(n => n.html)}))"""
    )
    return found
