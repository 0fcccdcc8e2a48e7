"""No dead names, and one JSON encoder for what the appliance writes.

A module-level constant nothing reads is dead code that a reader still has to understand
(`EVENT_TYPES`, `MIN_PING_S` were); JSON the appliance writes goes through `compact_json`,
so the wire, the outbox and the database cannot drift into two spellings.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

from tests.kit.cli import REPO

SOURCES = [path for part in ("handoff", "tests", "bench", "demo") for path in (REPO / part).rglob("*.py")]
JSON_DUMPS_ALLOWED = {
    "handoff/commands/parse.py": "re-encodes a command only to find lone surrogates",
    "handoff/provision/render.py": "quotes TOML strings, which share JSON's escapes",
    "handoff/audit/chain.py": "orjson writes the chain's RFC 8785 bytes where they are the reference's",
}


def _constants(path: Path) -> list[str]:
    names = []
    for node in ast.parse(path.read_text()).body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        names += [t.id for t in targets if isinstance(t, ast.Name) and re.fullmatch(r"[A-Z][A-Z0-9_]*", t.id)]
    return names


def test_every_module_constant_is_read_somewhere() -> None:
    """Counted as whole words, as `\bNAME\b` would find them, in one pass over every file."""
    words = Counter(word for path in SOURCES for word in re.findall(r"\w+", path.read_text()))
    dead = [
        f"{path.relative_to(REPO)}: {name}"
        for path in (REPO / "handoff").rglob("*.py")
        for name in _constants(path)
        if words[name] < 2
    ]
    assert not dead, dead


def test_json_is_written_with_the_shared_compact_encoder() -> None:
    stray = [
        str(path.relative_to(REPO))
        for path in (REPO / "handoff").rglob("*.py")
        if re.search(r"(?<!compact_)json\.dumps\(", path.read_text())
        and str(path.relative_to(REPO)) not in JSON_DUMPS_ALLOWED
    ]
    assert not stray, stray
