"""A program's data directory, made on first use and refused in one line, naming its config
key (`appliance.data_dir`, `agent.data_dir`), when it cannot be."""

from __future__ import annotations

from pathlib import Path

from handoff.errors import ConfigError, HandoffError


def ensure_data_dir(data_dir: Path, key: str) -> None:
    """Create the directory of config key `key` (mode 0750) if missing; a file or an unusable path names the key."""
    if data_dir.exists() and not data_dir.is_dir():
        raise ConfigError(
            f"{key} {data_dir} is not a directory; move the file aside or set another {key}",
            key=key,
        )
    try:
        data_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
    except OSError as exc:
        raise HandoffError(f"{key} {data_dir} cannot be created: {exc.strerror}") from None
