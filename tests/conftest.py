"""Shared fixtures: a valid appliance laid out in a temporary directory, and a CLI runner."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.kit.cli import CliRunner, run_handoff
from tests.kit.config import Layout


@pytest.fixture
def appliance(tmp_path: Path) -> Layout:
    return Layout.create(tmp_path)


@pytest.fixture
def cli() -> CliRunner:
    """Run `python -m handoff ...` as a separate process, the way biomed staff would."""
    return run_handoff
