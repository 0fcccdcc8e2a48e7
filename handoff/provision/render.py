"""Config values to TOML text: the few value kinds `handoff.toml` uses, nothing more."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

Value = str | bool | int | float
Table = Mapping[str, Value]


def render_toml(tables: Mapping[str, Table], arrays: Mapping[str, Sequence[Table]]) -> str:
    lines: list[str] = []
    for name, table in tables.items():
        if table:
            lines += [f"[{name}]", *_pairs(table), ""]
    for name, items in arrays.items():
        for item in items:
            lines += [f"[[{name}]]", *_pairs(item), ""]
    return "\n".join(lines)


def _pairs(table: Table) -> list[str]:
    return [f"{key} = {_value(value)}" for key, value in table.items()]


def _value(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)
