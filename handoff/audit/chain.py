"""How one event is linked to the one before it, so that no event can be edited, dropped,
inserted or moved without breaking a link.

    digest(E)   = SHA-256( RFC 8785 canonical JSON of event E with `data.chain` left out )
    chain(E_1)  = SHA-256( genesis(source) || digest(E_1) )
    chain(E_n)  = SHA-256( chain(E_{n-1}) || digest(E_n) )        (raw 32-byte values)
    genesis(s)  = SHA-256( "handoff-chain-v1\\n" || s )

Canonical JSON (not the bytes as published) so that a consumer that parsed and re-serialised
an event can still verify it; the digest of the event (not the event itself) is hashed into
the link so that a verifier can keep 32 bytes per event instead of the event.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Final

import rfc8785

GENESIS_TAG: Final = b"handoff-chain-v1\n"


def genesis(source: str) -> str:
    """The link before an appliance's first event: bound to its `source`, so trails cannot be swapped."""
    return hashlib.sha256(GENESIS_TAG + source.encode()).hexdigest()


def digest(event: Mapping[str, Any]) -> bytes:
    """SHA-256 of the event's canonical JSON without `data.chain`."""
    data = {key: value for key, value in event["data"].items() if key != "chain"}
    return hashlib.sha256(rfc8785.dumps({**event, "data": data})).digest()


def link(previous: str, event_digest: bytes) -> str:
    return hashlib.sha256(bytes.fromhex(previous) + event_digest).hexdigest()
