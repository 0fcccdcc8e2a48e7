"""`python -m handoff ...` as a separate process, the way biomed staff run it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

CliRunner = Callable[..., subprocess.CompletedProcess[str]]


def handoff_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment with the checkout importable, plus `extra`."""
    return {**os.environ, "PYTHONPATH": str(REPO), **(extra or {})}


def run_handoff(
    *args: str | Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """stdin is /dev/null, so a command that would prompt fails instead of hanging."""
    return subprocess.run(
        [sys.executable, "-m", "handoff", *map(str, args)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=handoff_env(env),
        timeout=timeout,
        check=False,
    )
