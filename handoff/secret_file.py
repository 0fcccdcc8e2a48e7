"""Reading a secret from a file, refused unless it is private.

The badge secret, an OSDP reader's key and every private key (audit, agent, TLS client) are
read the same way: a missing or unreadable file, or one that others may read or write, is one
line naming the config key and what to do. A private key is held to its owner alone (mode
0600, as `handoff provision` writes it): whoever reads it can sign as the cart."""

from __future__ import annotations

import stat
from pathlib import Path

from handoff.errors import ConfigError


def read_private(path: Path, key: str, *, missing_hint: str = "", owner_only: bool = False) -> bytes:
    """The bytes of `path`, stripped; `missing_hint` follows "does not exist" in the error;
    `owner_only` refuses a file its group may read too."""
    try:
        mode = path.stat().st_mode
        data = path.read_bytes().strip()
    except FileNotFoundError:
        raise ConfigError(f"{key}: {path} does not exist{missing_hint}") from None
    except OSError as exc:
        raise ConfigError(f"{key}: {path} cannot be read: {exc.strerror}") from None
    if owner_only and mode & (stat.S_IRGRP | stat.S_IWGRP | stat.S_IROTH | stat.S_IWOTH):
        raise ConfigError(f"{key}: {path} is a private key readable or writable by others; run: chmod 600 {path}")
    if mode & (stat.S_IROTH | stat.S_IWOTH):
        raise ConfigError(f"{key}: {path} is readable or writable by others; run: chmod 600 {path}")
    return data
