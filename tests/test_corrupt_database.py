"""A database whose header is intact but whose later pages are damaged, as a failing SD card leaves it.

Every command that opens it must say so in one line naming the file and what to do, and none
may rewrite the file: what can still be read (undelivered events) is the operator's to recover.
"""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import pytest

from handoff.config import load_config
from handoff.doctor.local import check_database
from handoff.doctor.result import Status
from tests.kit.cli import CliRunner
from tests.kit.config import Layout

PAGE = 4096


@pytest.fixture
def corrupt(appliance: Layout, cli: CliRunner) -> Path:
    rows = random.Random(7)
    csv = appliance.root / "badges.csv"
    lines = [f"{rows.randbytes(7).hex()},s{n},Staff {n},RN" for n in range(3000)]
    csv.write_text("uid,staff_id,name,role\n" + "\n".join(lines) + "\n")
    done = cli("badges", "import", csv, "-c", appliance.config)
    assert done.returncode == 0, done.stderr
    database = appliance.data_dir / "handoff.db"
    assert not Path(f"{database}-wal").exists()
    size = database.stat().st_size
    assert size > 20 * PAGE
    with database.open("r+b") as handle:
        for page in range(2, size // PAGE, 3):
            handle.seek(page * PAGE + 8)
            handle.write(rows.randbytes(PAGE // 2))
    return database


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("command", [["status"], ["badges", "list"], ["outbox", "export"], ["run"]], ids=" ".join)
def test_each_command_says_corrupt_in_one_line_and_leaves_the_file(
    appliance: Layout, cli: CliRunner, corrupt: Path, command: list[str]
) -> None:
    before = digest(corrupt)
    done = cli(*command, "-c", appliance.config, timeout=30)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    line = done.stderr.strip().splitlines()[-1]
    assert f"database {corrupt} is corrupt" in line and "restore it from a backup" in line, done.stderr
    assert "move handoff.db* aside" in line
    assert digest(corrupt) == before


def test_doctor_says_the_same(appliance: Layout, corrupt: Path) -> None:
    result = check_database(load_config(appliance.config))
    assert result.status is Status.FAIL and result.check == "database"
    assert f"database {corrupt} is corrupt" in result.detail and "restore it from a backup" in result.detail


def test_a_file_that_is_not_a_database_is_named_too(appliance: Layout, cli: CliRunner) -> None:
    appliance.data_dir.mkdir()
    database = appliance.data_dir / "handoff.db"
    database.write_bytes(os.urandom(8 * PAGE))
    done = cli("status", "-c", appliance.config)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"database {database} is corrupt" in done.stderr and done.stderr.count("\n") == 1
