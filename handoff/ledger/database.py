"""Opening the ledger's database: the URL from `ledger.database`, migrated to the latest schema.

SQLite runs in WAL mode with synchronous=FULL (the ledger acknowledges a message to the broker
only after its commit, so the commit must survive power loss); PostgreSQL through psycopg 3.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import SQLAlchemyError

from handoff.errors import HandoffError


def engine_for(url: str) -> Engine:
    """The engine for `ledger.database`, its schema brought up to date."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    engine = create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    try:
        migrate(engine)
    except SQLAlchemyError as exc:
        where = url.rsplit("@", 1)[-1]
        raise HandoffError(f"ledger.database {where}: cannot be opened: {getattr(exc, 'orig', None) or exc}") from None
    return engine


def migrate(engine: Engine) -> None:
    config = AlembicConfig()
    config.set_main_option("script_location", str(files("handoff.ledger") / "migrations"))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()
