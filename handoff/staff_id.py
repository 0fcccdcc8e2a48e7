"""The one rule for a staff id, held by the badge import, the directory command and the agent.

A staff id ends up as an argument of the site's logoff program on the workstation, so it is
kept to characters no program reads as an option, a placeholder, a path trick or shell syntax:
1 to 64 of `A-Z a-z 0-9 . _ @ -`, never starting with `-` (which argv parsers take as a flag).
"""

from __future__ import annotations

import re
from typing import Final

RULE: Final = "1 to 64 of A-Z a-z 0-9 . _ @ -, not starting with -"
_STAFF_ID: Final = re.compile(r"[A-Za-z0-9._@][A-Za-z0-9._@-]{0,63}")


def staff_id_problem(value: object) -> str | None:
    """Why `value` is not a staff id, or None when it is one."""
    if isinstance(value, str) and _STAFF_ID.fullmatch(value):
        return None
    if value == "":
        return f"is empty; it must be {RULE}"
    return f"must be {RULE}, got {value!r}"
