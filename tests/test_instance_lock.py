"""Two `handoff run` on one data_dir: the second exits 2 naming the lock and the first one's pid."""

from __future__ import annotations

import subprocess
import time

from handoff.testing.child import spawn_handoff, stop_child
from tests.kit.cli import CliRunner
from tests.kit.config import Layout


def start(appliance: Layout) -> subprocess.Popen[bytes]:
    return spawn_handoff("run", "-c", appliance.config, stderr=subprocess.DEVNULL)


def wait_for_holder(appliance: Layout, pid: int) -> None:
    lock = appliance.data_dir / "handoff.lock"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if lock.exists() and lock.read_text().strip() == str(pid):
            return
        time.sleep(0.05)
    raise AssertionError(f"{lock} never named pid {pid}")


def stop(process: subprocess.Popen[bytes]) -> int:
    return stop_child(process, timeout=30)


def test_second_run_on_one_data_dir_exits_2_naming_lock_and_pid(appliance: Layout, cli: CliRunner) -> None:
    first = start(appliance)
    try:
        wait_for_holder(appliance, first.pid)
        second = cli("run", "-c", appliance.config, timeout=30)
        assert second.returncode == 2, second.stderr
        assert "Traceback" not in second.stderr and second.stderr.count("\n") == 1
        lock = appliance.data_dir / "handoff.lock"
        assert f"holds the lock {lock} (pid {first.pid})" in second.stderr
        assert first.poll() is None
    finally:
        assert stop(first) == 0
    third = start(appliance)
    try:
        wait_for_holder(appliance, third.pid)
    finally:
        assert stop(third) == 0


def test_lock_is_released_when_the_holder_is_killed(appliance: Layout) -> None:
    first = start(appliance)
    try:
        wait_for_holder(appliance, first.pid)
    finally:
        first.kill()
        first.wait(timeout=30)
    second = start(appliance)
    try:
        wait_for_holder(appliance, second.pid)
    finally:
        assert stop(second) == 0


def test_a_data_dir_that_is_a_file_names_the_key(appliance: Layout, cli: CliRunner) -> None:
    appliance.data_dir.write_text("not a directory\n")
    for command in (["run"], ["status"], ["badges", "list"]):
        done = cli(*command, "-c", appliance.config, timeout=30)
        assert done.returncode == 2, (command, done.stderr)
        assert f"appliance.data_dir {appliance.data_dir} is not a directory" in done.stderr
        assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1
