"""Badge references: the only form in which a badge identifier leaves memory.

`badge_ref` is HMAC-SHA256 of the identifier under the site's secret (docs/integration.md), so
consumers can correlate taps without ever holding a UID that could be written to a clone.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Final

from handoff.errors import ConfigError
from handoff.secret_file import read_private

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
    data = read_private(path, key)
    if not data:
        raise ConfigError(f"{key}: {path} is empty")
    if len(data) < MIN_SECRET_BYTES:
        raise ConfigError(f"{key}: {path} holds {len(data)} bytes; at least {MIN_SECRET_BYTES} are needed")
    return BadgeSecret(data)
