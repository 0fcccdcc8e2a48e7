"""The one compact JSON form the appliance writes: to the outbox, the state row and the wire.

`json.dumps` with non-default separators builds a new encoder on every call; every commit
encodes twice, so the encoder is built once here.
"""

from __future__ import annotations

import json
from typing import Any, Final

_ENCODER: Final = json.JSONEncoder(separators=(",", ":"))


def dumps(value: Any) -> str:
    return _ENCODER.encode(value)
