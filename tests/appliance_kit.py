"""A complete throwaway appliance set-up (site secret and config) for the demo and benchmarks."""

from __future__ import annotations

import os
from pathlib import Path


def write_appliance(work: Path, broker_port: int, *, readers: str, policy: str = "", device: str = "WOW-3N-07") -> Path:
    """Write a 0600 site secret and a config against a local broker; returns the config path."""
    secret = work / "badge.key"
    secret.write_text(os.urandom(32).hex())
    secret.chmod(0o600)
    config = work / "handoff.toml"
    config.write_text(
        f'[appliance]\nsite = "st-elsewhere"\ndevice_id = "{device}"\nreader_id = "rdr-demo"\n'
        f'data_dir = "{work / "data"}"\nbadge_secret_file = "{secret}"\n\n[policy]\n{policy}\n\n'
        f'[mqtt]\nurl = "mqtt://127.0.0.1:{broker_port}"\nallow_insecure = true\n\n{readers}\n\n'
        '[feedback]\nboard = "none"\n'
    )
    return config
