"""The kit's CLI runner: `handoff ...` through its entry point in this process
(`handoff.testing.cli`, shared with the demo), and the checkout's root for tests that read it."""

from __future__ import annotations

from pathlib import Path

from handoff.testing.child import handoff_env
from handoff.testing.cli import CliRunner, run_handoff

REPO = Path(__file__).resolve().parents[2]

__all__ = ["REPO", "CliRunner", "handoff_env", "run_handoff"]
