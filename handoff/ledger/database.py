"""Opening the ledger's database: the URL from `ledger.database`, migrated to the latest schema.

SQLite runs in WAL mode with synchronous=FULL (the ledger acknowledges a message to the broker
only after its commit, so the commit must survive power loss), in a file made 0600 (it holds
the console's password hashes); PostgreSQL through psycopg 3.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from typing import TYPE_CHECKING, Any, Final, cast

from sqlalchemy import Connection, Engine, Table, create_engine, event, func, insert, inspect, make_url, select, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from handoff.errors import HandoffError

if TYPE_CHECKING:
    import psycopg
    from alembic.config import Config as AlembicConfig

SCHEMA_HEAD: Final = "0011"
"""The newest migration's revision. A database already there is opened without loading alembic,
whose import (mako and pygments with it) and scripts took about 0.2 s of every ledger command's
start; a test holds this to the migrations' head."""

WRITER_LOCK: Final = 0x68616E646F6666
"""The PostgreSQL advisory lock a writing transaction holds ("handoff" in ASCII)."""
_WRITER: Final = "handoff_ledger_writer"


def engine_for(url: str) -> Engine:
    """The engine for `ledger.database`, its schema brought up to date."""
    engine = create_engine(_driver(url), pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        _private_file(engine.url.database)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    try:
        if revision(engine) != SCHEMA_HEAD:
            migrate(engine)
    except SQLAlchemyError as exc:
        where = url.rsplit("@", 1)[-1]
        raise HandoffError(f"ledger.database {where}: cannot be opened: {getattr(exc, 'orig', None) or exc}") from None
    return engine


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A transaction that reads the ledger's state and writes what follows from it, alone.

    A batch reads its sources' watermarks, the events around its own and the open exceptions,
    then writes: two ledgers on a shared subscription doing that at once would each miss the
    other's uncommitted events, leave the link between them unchecked and write back stale
    watermarks. So writing transactions take turns: on PostgreSQL under one advisory lock
    (held to the commit), on SQLite by taking the write lock at BEGIN IMMEDIATE.
    """
    with engine.connect() as conn:
        conn.execution_options(**{_WRITER: True})
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(select(func.pg_advisory_xact_lock(WRITER_LOCK)))
            yield conn


def insert_rows(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """New rows, each with the same columns (a serial id left to the database): on PostgreSQL
    through psycopg's COPY, elsewhere one executemany INSERT."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(insert(table), rows)
        return
    columns = list(rows[0])
    quoted = ", ".join(conn.dialect.identifier_preparer.quote(column) for column in columns)
    raw = cast("psycopg.Connection[Any]", conn.connection.dbapi_connection)
    with raw.cursor() as cursor, cursor.copy(f"COPY {table.name} ({quoted}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([row[column] for column in columns])


def revision(engine: Engine) -> str | None:
    """The database's schema revision, None before the first migration."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        found = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return str(found) if found is not None else None


def revisions(url: str) -> tuple[str | None, str]:
    """The database's schema revision (None before the first migration) and the latest, read
    without migrating (nor creating a SQLite file): for `handoff ledger doctor`."""
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic()).get_current_head()
    assert head is not None
    if url.startswith("sqlite:///") and not os.path.exists(make_url(url).database or ""):
        return None, head
    engine = create_engine(_driver(url), connect_args={"connect_timeout": 5} if "postgresql" in url else {})
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
    return current, head


def migrate(engine: Engine) -> None:
    """Under the writers' lock: ledgers started together on a new database would otherwise each
    create the tables (PostgreSQL: a duplicate `alembic_version` key; SQLite: locked)."""
    from alembic import command

    config = _alembic()
    with writing(engine) as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def _driver(url: str) -> str:
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def _alembic() -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(files("handoff.ledger") / "migrations"))
    return config


def _private_file(path: str | None) -> None:
    """Made before SQLite makes it with the umask's mode; its -wal and -shm files take its mode."""
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return
    except OSError as exc:
        raise HandoffError(f"ledger.database {path}: cannot be created ({exc.strerror})") from None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """sqlite3's own transaction handling is turned off (it runs SELECTs outside any transaction):
    `_sqlite_begin` starts each one instead, as SQLAlchemy's SQLite documentation advises."""
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITER) else "BEGIN")


@contextmanager
def write_first(engine: Engine) -> Iterator[Connection]:
    """A short write beside the ledger's batches (the console's sessions, logins and
    acknowledgements), which reads nothing the ledger's batches depend on.

    On SQLite it takes the write lock at BEGIN IMMEDIATE: a transaction that began as a reader
    and writes after a ledger commit fails at once with SQLITE_BUSY_SNAPSHOT, which the busy
    timeout does not cover, while one that asks for the lock first waits its turn. On PostgreSQL
    row locks suffice, so it does not queue behind ingest's advisory lock.
    """
    with engine.connect() as conn:
        conn.execution_options(**{_WRITER: True})
        with conn.begin():
            yield conn


def busy(exc: OperationalError) -> bool:
    """SQLite's "database is locked/busy": another writer held on past the busy timeout."""
    code = getattr(exc.orig, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
