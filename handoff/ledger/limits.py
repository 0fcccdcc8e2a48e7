"""What a column can hold, read off schema.py's types, checked before a batch is written.

One value the database cannot store (a 300-character device id into varchar(255), a seq of
2^63 into a bigint, a NUL in text) fails the whole batch, and the broker delivers the same
message again after every restart: so each row a message would write is checked here first,
and a message that does not fit is refused and counted instead. The limits are the schema's
own (`String(64)`, `BigInteger`): there is no second list of numbers to fall out of step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import cache
from typing import Any, Final, NamedTuple

from sqlalchemy import BigInteger, Integer, String, Table

BIGINT: Final = (-(2**63), 2**63 - 1)
INTEGER: Final = (-(2**31), 2**31 - 1)
"""Both engines' ranges: PostgreSQL's bigint and integer; SQLite's integers are 64-bit."""


class DoesNotFit(Exception):
    """`reason` is the counter's name; the message names the column and the limit."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class _Limit(NamedTuple):
    length: int | None
    """Of a string column, where the type says."""
    span: tuple[int, int] | None
    """Of an integer column."""


def check(table: Table, row: Mapping[str, Any]) -> None:
    """Raises `DoesNotFit` for the first value of `row` its column in `table` cannot hold."""
    limits = _limits(table)
    for name, value in row.items():
        problem = _problem(limits[name], value)
        if problem is not None:
            reason, limit = problem
            raise DoesNotFit(reason, f"{table.name}.{name} {limit}")


@cache
def _limits(table: Table) -> dict[str, _Limit]:
    """Each column's limits, read off its type once: every message is checked against several
    tables' columns, and looking each column up through SQLAlchemy cost 6 % of ingest."""
    limits = {}
    for column in table.columns:
        kind = column.type
        length = kind.length if isinstance(kind, String) else None
        span = (BIGINT if isinstance(kind, BigInteger) else INTEGER) if isinstance(kind, Integer) else None
        limits[column.name] = _Limit(length, span)
    return limits


def _problem(limit: _Limit, value: object) -> tuple[str, str] | None:
    if isinstance(value, str):
        if "\x00" in value:
            return "nul_character", "holds a NUL character"
        if limit.length is not None and len(value) > limit.length:
            return "too_long", f"is {len(value)} characters, over {limit.length}"
    elif isinstance(value, int) and not isinstance(value, bool) and limit.span is not None:
        low, high = limit.span
        if not low <= value <= high:
            return "out_of_range", f"is {value}, outside {low}..{high}"
    elif isinstance(value, float) and not math.isfinite(value):
        return "out_of_range", f"is {value}"
    return None
