"""Badge references: the only form in which a badge identifier leaves memory.

`badge_ref` is HMAC-SHA256 of the identifier under the site's secret (SPEC section 3), so
consumers can correlate taps without ever holding a UID that could be written to a clone.
"""

from __future__ import annotations

import hashlib
import hmac
import stat
from pathlib import Path
from typing import Final

from handoff.errors import ConfigError

MIN_SECRET_BYTES: Final = 16


class BadgeSecret:
    """The site secret; its repr never shows the key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_SECRET_BYTES:
            raise ValueError("badge secret is too short")
        self._key = key

    def ref(self, identifier: bytes) -> str:
        return hmac.new(self._key, identifier, hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return "BadgeSecret(<hidden>)"


def load_secret(path: Path) -> BadgeSecret:
    """Read the site secret, refusing one that is missing, empty, short or readable by others."""
    key = "appliance.badge_secret_file"
    try:
        mode = path.stat().st_mode
        data = path.read_bytes().strip()
    except FileNotFoundError:
        raise ConfigError(f"{key}: {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"{key}: {path} cannot be read: {exc.strerror}") from None
    if mode & (stat.S_IROTH | stat.S_IWOTH):
        raise ConfigError(f"{key}: {path} is readable or writable by others; run: chmod 600 {path}")
    if not data:
        raise ConfigError(f"{key}: {path} is empty")
    if len(data) < MIN_SECRET_BYTES:
        raise ConfigError(f"{key}: {path} holds {len(data)} bytes; at least {MIN_SECRET_BYTES} are needed")
    return BadgeSecret(data)
