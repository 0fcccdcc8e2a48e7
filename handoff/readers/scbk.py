"""The OSDP Secure Channel base key (SCBK) of a site, as `scbk_file` holds it.

The file holds the 16-byte key as 32 hex digits on one line (a trailing newline is fine), so
a biomed tech can compare two carts' keys with `cat` and copy one with any editor. It must not
be readable by others, like the badge secret. The public default key SCBK-D (bytes 30..3F,
printed in every OSDP manual) is refused: a reader still on it talks to anyone who can wire
into the bus. Only `handoff provision --osdp-install` talks to a reader on SCBK-D, once, to
give it the site key.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Final

from handoff.errors import ConfigError
from handoff.secret_file import read_private

SCBK_BYTES: Final = 16
SCBK_D: Final = bytes(range(0x30, 0x40))
"""The install-mode key of the OSDP specification."""


def load_scbk(path: Path, key: str) -> bytes:
    """The site key from `path`; `key` names the config key (`readers[0].scbk_file`) in the one error line."""
    data = read_private(path, key, missing_hint="; make one with: handoff provision --osdp-install")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise ConfigError(f"{key}: {path} is not 32 hex digits (it holds non-ASCII bytes)") from None
    try:
        scbk = bytes.fromhex(text)
    except ValueError:
        scbk = b""
    if len(scbk) != SCBK_BYTES or len(text) != 2 * SCBK_BYTES:
        raise ConfigError(f"{key}: {path} must hold the {SCBK_BYTES}-byte key as {2 * SCBK_BYTES} hex digits")
    if scbk == SCBK_D:
        raise ConfigError(
            f"{key}: {path} holds the public OSDP default key SCBK-D (30..3F), which anyone can use; "
            "set a site key with: handoff provision --osdp-install"
        )
    return scbk


def new_scbk() -> bytes:
    return secrets.token_bytes(SCBK_BYTES)


def scbk_text(scbk: bytes) -> bytes:
    """The file's content for `scbk`."""
    return scbk.hex().encode() + b"\n"
