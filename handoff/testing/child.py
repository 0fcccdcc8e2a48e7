"""A long-running `handoff` command (`run`, `agent`, `ledger run`, `ledger serve`) as a child
process, started one way by the tests, the demo and the benches.

They run as real processes because they live until a signal, install signal handlers, and are
what systemd starts; each is stopped by a signal and waited for, so none outlives its caller.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO

SOURCE_ROOT = Path(__file__).resolve().parents[2]
"""The directory holding the `handoff` package this process imported, so a child imports the same one."""


def handoff_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment with this `handoff` importable, plus `extra`."""
    return {**os.environ, "PYTHONPATH": str(SOURCE_ROOT), **(extra or {})}


HANDOFF: tuple[str, ...] = (sys.executable, "-m", "handoff")
"""The program: this interpreter running the package, as the `handoff` script does."""


def handoff_argv(*args: str | Path, program: Sequence[str] = HANDOFF) -> list[str]:
    return [*program, *map(str, args)]


def spawn_handoff(
    *args: str | Path,
    env: dict[str, str] | None = None,
    stdout: int | IO[bytes] | None = subprocess.DEVNULL,
    stderr: int | IO[bytes] | None = subprocess.PIPE,
    program: Sequence[str] = HANDOFF,
) -> subprocess.Popen[bytes]:
    """`handoff ARGS` started in the background; stdin is /dev/null so nothing waits on a prompt.
    `program` replaces the interpreter and package, for a test that wraps the entry point."""
    return subprocess.Popen(
        handoff_argv(*args, program=program),
        env=handoff_env(env),
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
    )


def stop_child(process: subprocess.Popen[bytes], sig: signal.Signals = signal.SIGTERM, timeout: float = 10) -> int:
    """Signal the child and wait for it; one that ignores the signal past `timeout` is killed."""
    if process.poll() is None:
        process.send_signal(sig)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise
