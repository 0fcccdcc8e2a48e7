"""RFC 3339 UTC timestamps, the one time format on the wire."""

from __future__ import annotations

import math
import time


def rfc3339(epoch_seconds: float) -> str:
    """Millisecond precision with a `Z`: what SIEMs parse without a format hint.

    Formatted from `time.gmtime` rather than a `datetime`: every committed event is stamped
    here, and `strftime` on a fresh `datetime` was a visible part of a commit's cost.
    """
    seconds, millis = divmod(math.floor(epoch_seconds * 1000), 1000)
    t = time.gmtime(seconds)
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{millis:03d}Z"
