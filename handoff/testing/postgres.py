"""A PostgreSQL database per test: on the local server when one answers on 127.0.0.1:5432,
otherwise on a throwaway cluster made with Debian's postgresql binaries (initdb, pg_ctl) and
stopped at exit.

A test that wants the ledger's schema gets a copy of a template database the migrations made
once (`create_database(migrated=True)`): running the ten migrations costs 1.3-1.8 s a database
on this machine, copying their result a fraction of that. The template is named after a digest
of the migration files, so a changed migration makes a new one, and the old is dropped.
"""

from __future__ import annotations

import atexit
import glob
import shutil
import subprocess
import tempfile
import uuid
from functools import cache
from pathlib import Path

import psycopg

from handoff.testing.ledger_schema import migrations_digest
from handoff.testing.net import free_tcp_port

LOCAL = "postgresql://postgres@127.0.0.1:5432"


@cache
def server() -> str:
    """The base URL of a server the tests may create databases on."""
    try:
        with psycopg.connect(f"{LOCAL}/postgres", connect_timeout=3):
            return LOCAL
    except psycopg.OperationalError:
        return _throwaway_cluster()


def _throwaway_cluster() -> str:
    binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not binaries:
        raise RuntimeError("no PostgreSQL answers on 127.0.0.1:5432 and Debian's postgresql is not installed")
    bin_dir, port = binaries[-1], free_tcp_port()
    data = tempfile.mkdtemp(prefix="handoff-pg-")
    shutil.chown(data, "postgres")
    as_postgres = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*as_postgres, f"{bin_dir}/initdb", "-D", data, "-U", "postgres", "--auth=trust"],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [*as_postgres, f"{bin_dir}/pg_ctl", "-D", data, "-o", options, "-w", "start"], check=True, capture_output=True
    )
    atexit.register(
        subprocess.run, [*as_postgres, f"{bin_dir}/pg_ctl", "-D", data, "-m", "immediate", "stop"], capture_output=True
    )
    atexit.register(shutil.rmtree, data, True)
    return f"postgresql://postgres@127.0.0.1:{port}"


TEMPLATE_PREFIX = "ledger_template_"
_TEMPLATE_LOCK = 0x68616E64  # an advisory lock of the tests' own: one process makes the template


def create_database(*, migrated: bool = False) -> str:
    """A new, empty database; `migrated`: a copy of one the ledger's migrations brought to head."""
    name = f"ledger_test_{uuid.uuid4().hex[:12]}"
    template = f' TEMPLATE "{_template()}"' if migrated else ""
    with psycopg.connect(f"{server()}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"{template}')
    return f"{server()}/{name}"


@cache
def _template() -> str:
    """The migrated template, made by whichever test process gets here first (the others wait)."""
    name = TEMPLATE_PREFIX + migrations_digest()
    with psycopg.connect(f"{server()}/postgres", autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_TEMPLATE_LOCK,))
        try:
            existing = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
            if name not in existing:
                for stale in sorted(d for d in existing if d.startswith(TEMPLATE_PREFIX)):
                    conn.execute(f'DROP DATABASE IF EXISTS "{stale}" WITH (FORCE)')
                making = f"{name}_making"
                conn.execute(f'DROP DATABASE IF EXISTS "{making}" WITH (FORCE)')
                conn.execute(f'CREATE DATABASE "{making}"')
                _migrate(f"{server()}/{making}")
                conn.execute(f'ALTER DATABASE "{making}" RENAME TO "{name}"')
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_TEMPLATE_LOCK,))
    return name


def _migrate(url: str) -> None:
    from handoff.ledger.database import engine_for  # noqa: PLC0415 - the ledger's libraries, only where a test asks

    engine_for(url).dispose()


def drop_database(url: str) -> None:
    base, name = url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Cluster:
    """A PostgreSQL server of the test's own, which the test may stop and start: never the
    machine's shared one on 5432, which other work uses."""

    def __init__(self) -> None:
        binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not binaries:
            raise RuntimeError("Debian's postgresql is not installed")
        self._bin, self.port = binaries[-1], free_tcp_port()
        self._data = tempfile.mkdtemp(prefix="handoff-pg-")
        shutil.chown(self._data, "postgres")
        self._run("initdb", "-D", self._data, "-U", "postgres", "--auth=trust")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str) -> None:
        """Output to a log file: the server pg_ctl starts would hold a captured pipe open, and
        `subprocess.run` would wait for it to close until the server stops."""
        with (Path(self._data).parent / f"{Path(self._data).name}.log").open("ab") as log:
            command = ["runuser", "-u", "postgres", "--", f"{self._bin}/{program}", *args]
            subprocess.run(command, check=True, stdout=log, stderr=log, stdin=subprocess.DEVNULL)

    def start(self) -> None:
        options = f"-p {self.port} -k {self._data} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", self._data, "-o", options, "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", self._data, "-m", "fast", "-w", "stop")

    def __enter__(self) -> Cluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", f"{self._bin}/pg_ctl", "-D", self._data, "-m", "immediate", "stop"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self._data, ignore_errors=True)
        Path(f"{self._data}.log").unlink(missing_ok=True)
