"""Shared fixtures: a valid appliance config in a temporary directory, and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Appliance:
    """A config file, site secret and data dir laid out like /etc/handoff on a real cart."""

    root: Path
    config: Path
    secret: Path
    data_dir: Path

    def write_config(self, body: str) -> Path:
        self.config.write_text(body, encoding="utf-8")
        return self.config


BASE_CONFIG = """
[appliance]
site = "st-elsewhere"
device_id = "WOW-3N-07"
reader_id = "rdr-0042"
data_dir = "{data_dir}"
badge_secret_file = "{secret}"

[mqtt]
url = "mqtt://127.0.0.1:1883"
allow_insecure = true

[feedback]
board = "none"
"""


@pytest.fixture
def appliance(tmp_path: Path) -> Appliance:
    secret = tmp_path / "badge.key"
    secret.write_text("0123456789abcdef0123456789abcdef\n")
    secret.chmod(0o600)
    data_dir = tmp_path / "data"
    app = Appliance(tmp_path, tmp_path / "handoff.toml", secret, data_dir)
    app.write_config(BASE_CONFIG.format(data_dir=data_dir, secret=secret))
    return app


CliRunner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli() -> CliRunner:
    """Run `python -m handoff ...` as a separate process, the way biomed staff would."""

    def run(
        *args: str | Path, env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
        return subprocess.run(
            [sys.executable, "-m", "handoff", *map(str, args)],
            capture_output=True,
            text=True,
            env=full_env,
            timeout=timeout,
            check=False,
        )

    return run
