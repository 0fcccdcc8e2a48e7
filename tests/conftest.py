"""Shared fixtures: a valid appliance laid out in a temporary directory, a CLI runner, and a
ledger database on each engine the ledger supports."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from handoff.ledger.database import engine_for
from handoff.testing.ledger_schema import sqlite_ledger
from tests.kit.browser import SCREENSHOTS
from tests.kit.cli import CliRunner, run_handoff
from tests.kit.config import Layout
from tests.kit.postgres import create_database, drop_database
from tests.kit.seeds import seeded_random

STARTED = time.time()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Where this run's browser tests left their screenshots (1280, 768 and 390 px), for a person."""
    fresh = [shot for shot in SCREENSHOTS.glob("*.png") if shot.stat().st_mtime >= STARTED]
    if fresh:
        terminalreporter.write_line(f"console screenshots: {len(fresh)} written to {SCREENSHOTS}")


@pytest.fixture
def appliance(tmp_path: Path) -> Layout:
    return Layout.create(tmp_path)


@pytest.fixture
def cli() -> CliRunner:
    """`handoff ...` through its entry point in this process (tests/kit/cli.py)."""
    return run_handoff


@pytest.fixture
def rng() -> random.Random:
    """Random choices whose seed is printed (tests/kit/seeds.py)."""
    return seeded_random()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A ledger database URL, its schema made (copied from one the migrations made for this run):
    the same test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield sqlite_ledger(tmp_path / "ledger.db")
        return
    url = create_database(migrated=True)
    yield url
    drop_database(url)


@pytest.fixture
def engine(database: str) -> Iterator[Engine]:
    made = engine_for(database)
    yield made
    made.dispose()
