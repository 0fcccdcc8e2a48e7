"""The repository explains itself: no text cites a contract document that is not in it.

The product's contract lives in docs/; a reference to an outside file (the contract's "section 10") sends
a reader, or an integration engineer reading `--help`, to a page they do not have. The
pattern is spelled in two halves so this file does not match itself.
"""

from __future__ import annotations

import re

from tests.kit.cli import REPO

OUTSIDE_CONTRACT = re.compile("SP" + r"EC\b")
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".toml", ".cfg", ".ini", ".txt", ".sh", ".service", ".html", ""}


def test_no_text_cites_an_outside_contract() -> None:
    cited = [
        f"{path.relative_to(REPO)}:{number}"
        for part in ("handoff", "tests", "bench", "demo", "docs", "hw", "firmware")
        for path in sorted((REPO / part).rglob("*"))
        if path.is_file() and path.suffix in TEXT_SUFFIXES and "__pycache__" not in path.parts
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if OUTSIDE_CONTRACT.search(line)
    ]
    cited += [
        f"{name}:{n}"
        for name in ("README.md", "Makefile")
        for n, line in enumerate((REPO / name).read_text().splitlines(), 1)
        if OUTSIDE_CONTRACT.search(line)
    ]
    assert not cited, cited
