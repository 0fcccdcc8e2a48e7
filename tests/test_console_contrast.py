"""Every colour pair the console draws, its WCAG 2.1 contrast computed from the stylesheet and
the timeline's palette themselves: text at least 4.5:1, graphics and focus outlines at least 3:1.

axe-core checks the HTML's text in a browser, but not SVG text, bars against their background or
the focus outline; this covers those, and fails the moment a colour in the files changes."""

from __future__ import annotations

import re
from importlib.resources import files

import pytest

from handoff.ledger.console.timeline import DENSE, PALETTE

CSS = (files("handoff.ledger.console") / "static" / "console.css").read_text()
TEXT, GRAPHIC = 4.5, 3.0


def declared(selector: str, prop: str) -> str:
    """`prop` of the rule whose selector list is exactly `selector`, var(--x) resolved."""
    rule = re.search(rf"(?m)^{re.escape(selector)} \{{([^}}]*)\}}", CSS)
    assert rule, f"no rule {selector!r} in console.css"
    found = re.search(rf"(?:^|;)\s*{re.escape(prop)}:\s*([^;]+)", rule.group(1))
    assert found, f"{selector} has no {prop}"
    value = found.group(1).strip()
    if prop == "outline":
        value = value.split()[-1]
    named = re.fullmatch(r"var\((--[a-z-]+)\)", value)
    return declared(":root", named.group(1)) if named else value


def luminance(colour: str) -> float:
    digits = colour.lstrip("#")
    digits = "".join(c * 2 for c in digits) if len(digits) == 3 else digits
    assert re.fullmatch(r"[0-9a-fA-F]{6}", digits), colour

    def linear(channel: float) -> float:
        return channel / 12.92 if channel <= 0.04045 else ((channel + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(int(digits[i : i + 2], 16) / 255) for i in (0, 2, 4))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def ratio(one: str, other: str) -> float:
    light, dark = sorted((luminance(one), luminance(other)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_the_wcag_arithmetic_matches_known_pairs() -> None:
    assert round(ratio("#000", "#fff"), 2) == 21.0 and ratio("#777", "#777") == 1.0
    assert round(ratio("#767676", "#fff"), 2) == 4.54 and round(ratio("#ffbf47", "#fff"), 2) == 1.64


def pairs() -> list[tuple[str, str, str, float]]:
    paper, chart, top = declared(":root", "--paper"), declared(":root", "--chart"), declared(":root", "--top")
    found = [
        ("body text", declared("body", "color"), paper, TEXT),
        ("links", declared("a", "color"), paper, TEXT),
        ("links on a row needing attention", declared("a", "color"), declared("tr.attention", "background"), TEXT),
        ("links on an open exception", declared("a", "color"), declared(".flags tr.open", "background"), TEXT),
        ("muted text", declared(":root", "--muted"), paper, TEXT),
        (
            "muted text on an open exception",
            declared(":root", "--muted"),
            declared(".flags tr.open", "background"),
            TEXT,
        ),
        ("button text", declared("button", "color"), declared("button", "background"), TEXT),
        ("header text", declared(".top", "color"), top, TEXT),
        ("problem text", declared("body", "color"), declared(".problem", "background"), TEXT),
        ("skip link", declared("body", "color"), declared(".skip:focus", "background"), TEXT),
        ("offline and overdue", declared(".offline, .overdue", "color"), paper, TEXT),
        ("online", declared(".online", "color"), paper, TEXT),
        ("focus outline", declared("a:focus, button:focus, input:focus, select:focus", "outline"), paper, GRAPHIC),
        (
            "focus outline in the header",
            declared(".top a:focus, .top button:focus, .top input:focus", "outline-color"),
            top,
            GRAPHIC,
        ),
        ("timeline row labels", declared(".row-label", "fill"), chart, TEXT),
        ("timeline ticks", declared(".tick-label", "fill"), chart, TEXT),
        ("unconfirmed logoff mark", declared(".flag", "fill"), chart, TEXT),
        ("a run of intervals", DENSE, chart, GRAPHIC),
    ]
    for state in ("in_use", "locked", "available", "maintenance, .state-unknown"):
        found.append((f"state {state}", declared(f".state-{state}", "color"), paper, TEXT))
    for colour in PALETTE:
        found.append((f"bar label on {colour}", declared(".bar-label", "fill"), colour, TEXT))
        found.append((f"bar {colour} on the timeline", colour, chart, GRAPHIC))
    return found


@pytest.mark.parametrize(("what", "fore", "back", "least"), pairs(), ids=[p[0] for p in pairs()])
def test_every_colour_pair_is_readable(what: str, fore: str, back: str, least: float) -> None:
    assert ratio(fore, back) >= least, f"{what}: {fore} on {back} is {ratio(fore, back):.2f}:1, under {least}:1"
