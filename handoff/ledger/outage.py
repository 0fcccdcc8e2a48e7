"""Telling a database outage from a message the database refuses, and saying each outage once.

A ledger that exits on a database error is restarted onto the same backlog, or not at all; so an
outage (server stopped, connection lost, disk full, locked) is waited out inside the process,
while an error caused by what a message holds is the message's fault and is set aside.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError

log = logging.getLogger("handoff.ledger")

OUTAGES = (
    OperationalError,
    InterfaceError,
    DisconnectionError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    sqlite3.OperationalError,
)
"""psycopg's and sqlite3's own classes too: the COPY of events runs on the raw connection."""


def is_outage(exc: BaseException) -> bool:
    """The database, not the message: retrying the same batch later can succeed."""
    return isinstance(exc, OUTAGES) or (isinstance(exc, DBAPIError) and exc.connection_invalidated)


def why(exc: BaseException) -> str:
    """The driver's first line, without SQLAlchemy's statement and parameters (they may hold
    what a message carried)."""
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip().splitlines()
    return text[0] if text else type(inner).__name__


class Outage:
    """One thing the ledger depends on (the database, the broker): logs a line when it becomes
    unreachable and one when it is back, not one per retry."""

    def __init__(self, name: str, clock: Callable[[], float]) -> None:
        self._name, self._clock = name, clock
        self.since: float | None = None

    def down(self, reason: str) -> None:
        if self.since is not None:
            return
        self.since = self._clock()
        stamp = datetime.fromtimestamp(self.since, UTC).isoformat(timespec="seconds")
        log.warning("%s unreachable since %s (%s), retrying", self._name, stamp, reason)

    def up(self) -> None:
        if self.since is None:
            return
        log.warning("%s reachable again after %.0f s", self._name, self._clock() - self.since)
        self.since = None
