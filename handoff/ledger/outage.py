"""Telling a database outage from a message the database refuses.

A ledger that exits on a database error is restarted onto the same backlog, or not at all; so an
outage (server stopped, connection lost, disk full, locked) is waited out inside the process,
while an error caused by what a message holds is the message's fault and is set aside.
"""

from __future__ import annotations

import sqlite3

import psycopg
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError

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
