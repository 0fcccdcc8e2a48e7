"""RFC 3339 UTC timestamps, the one time format on the wire."""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(epoch_seconds: float) -> str:
    """Millisecond precision with a `Z`: what SIEMs parse without a format hint."""
    moment = datetime.fromtimestamp(epoch_seconds, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
