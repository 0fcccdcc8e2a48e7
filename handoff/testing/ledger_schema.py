"""The ledger's schema made once per test run and copied, for tests that need a ledger database.

Each test database used to run the ledger's ten migrations itself (0.7-1.0 s on SQLite, 1.3-1.8 s
on PostgreSQL here); a file copy of an SQLite database the migrations made once costs about
0.1 s. `migrations_digest` names the migrations' current form, for PostgreSQL's template too.
"""

from __future__ import annotations

import atexit
import hashlib
import shutil
import tempfile
from functools import cache
from importlib.resources import files
from pathlib import Path


def migrations_digest() -> str:
    """Twelve hex digits that change whenever a migration file does."""
    digest = hashlib.sha256()
    versions = files("handoff.ledger") / "migrations" / "versions"
    for migration in sorted(versions.iterdir(), key=lambda item: item.name):
        if migration.name.endswith(".py"):
            digest.update(migration.name.encode() + b"\0" + migration.read_bytes())
    return digest.hexdigest()[:12]


def sqlite_ledger(path: Path) -> str:
    """The URL of a new SQLite ledger at `path`, its schema at head, copied from this run's template."""
    shutil.copyfile(_sqlite_template(), path)
    path.chmod(0o600)
    return f"sqlite:///{path}"


@cache
def _sqlite_template() -> Path:
    from handoff.ledger.database import engine_for  # noqa: PLC0415 - the ledger's libraries, only where a test asks

    folder = tempfile.mkdtemp(prefix="handoff-ledger-template-")
    atexit.register(shutil.rmtree, folder, True)
    made = Path(folder) / "ledger.db"
    engine_for(f"sqlite:///{made}").dispose()
    return made
