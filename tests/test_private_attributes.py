"""House rule: an object reads its own attributes, not another's private ones.

The publisher's connection once read 14 private attributes of the publisher 36 times; this
keeps any module in `handoff/` from growing that kind of coupling again.
"""

from __future__ import annotations

import ast

from tests.kit.cli import REPO

NAMEDTUPLE_API = {"_make", "_replace", "_asdict", "_fields"}


def test_no_module_reads_another_objects_private_attributes() -> None:
    found = []
    for path in sorted((REPO / "handoff").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Attribute) or not node.attr.startswith("_") or node.attr.startswith("__"):
                continue
            if node.attr in NAMEDTUPLE_API or (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                continue
            found.append(f"{path.relative_to(REPO)}:{node.lineno}: {ast.unparse(node)}")
    assert not found, "\n".join(found)
