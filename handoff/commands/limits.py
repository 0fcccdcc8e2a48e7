"""How large a command may be: the parser refuses a bigger one, and the MQTT connection tells
the broker not to send one at all, so the transport reads this without loading the parser."""

from __future__ import annotations

from typing import Final

MAX_BYTES: Final = {"directory": 8 * 1024 * 1024}
DEFAULT_MAX_BYTES: Final = 4096
LARGEST_COMMAND_BYTES: Final = max(DEFAULT_MAX_BYTES, *MAX_BYTES.values())
