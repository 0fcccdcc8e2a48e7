"""How one event is linked to the one before it, so that no event can be edited, dropped,
inserted or moved without breaking a link.

    digest(E)   = SHA-256( RFC 8785 canonical JSON of event E with `data.chain` and
                           `data.signature` left out )
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

import orjson
import rfc8785

GENESIS_TAG: Final = b"handoff-chain-v1\n"
SAFE_INTEGER: Final = 2**53 - 1
UNLINKED: Final = frozenset({"chain", "signature"})


def genesis(source: str) -> str:
    """The link before an appliance's first event: bound to its `source`, so trails cannot be swapped."""
    return hashlib.sha256(GENESIS_TAG + source.encode()).hexdigest()


def digest(event: Mapping[str, Any]) -> bytes:
    """SHA-256 of the event's canonical JSON without `data.chain` and `data.signature`: the
    signature covers the link, so the link cannot cover the signature; and a trail links the
    same whether or not its appliance signs."""
    data = {key: value for key, value in event["data"].items() if key not in UNLINKED}
    return hashlib.sha256(canonical({**event, "data": data})).digest()


_PLACEHOLDER: Final = "0" * 64
_KEY: Final = b'"chain":"'
_ITEM: Final = _KEY + _PLACEHOLDER.encode() + b'"'


def sealed(event: dict[str, Any], previous: str) -> tuple[bytes, str]:
    """The event as canonical JSON with its `data.chain` set to its link from `previous`, and
    that link; `event` gets the link too.

    One encoding serves both the digest and the stored bytes, because this runs on every tap
    before the beep: the event is encoded with a placeholder link, which is cut out for the
    digest and then overwritten. The cut is exact: in JSON a quote inside a string is always
    escaped, so `"chain":"` occurs only where the key is, and events have no nested `chain`.
    """
    event["data"]["chain"] = _PLACEHOLDER
    text = canonical(event)
    at = text.index(_ITEM)
    after = at + len(_ITEM)
    chain = event["data"]["chain"] = link(previous, _digest_without(text, at, after))
    return text[:at] + f'"chain":"{chain}"'.encode() + text[after:], chain


def digest_of_signed(signed: bytes, chain: object) -> bytes | None:
    """`digest` of an event worked out from the bytes its signature covers
    (`signature.event_signed_bytes`: the same canonical JSON with `data.chain` still in), by
    cutting the link out as `sealed` does: the ledger encodes each event once for both. None
    when the cut could not be exact, and then `digest` it is: a link that is not a plain
    string, or a `"chain":"` key anywhere else in the event (in JSON a quote inside a string is
    always escaped, so the key's bytes occur nowhere but where a key is)."""
    if type(chain) is not str or not chain.isascii() or not chain.isalnum():
        return None
    if signed.count(_KEY) != 1:
        return None
    item = _KEY + chain.encode() + b'"'
    at = signed.find(item)
    if at < 0:
        return None
    return _digest_without(signed, at, at + len(item))


def _digest_without(text: bytes, at: int, after: int) -> bytes:
    """SHA-256 of canonical JSON with the item `text[at:after]` and its comma left out."""
    if text[after : after + 1] == b",":
        bare = hashlib.sha256(text[:at])
        bare.update(text[after + 1 :])
    else:
        bare = hashlib.sha256(text[: at - 1 if text[at - 1 : at] == b"," else at])
        bare.update(text[after:])
    return bare.digest()


def canonical(value: Any) -> bytes:
    """RFC 8785 JSON. The library is the reference; it runs on every commit, though, and costs
    about 25 us per event, so JSON that orjson writes exactly as it does (ASCII keys, which sort
    the same by UTF-16 code units as by bytes; no floats, whose formatting differs; integers
    within 2^53: every event the appliance makes) takes orjson, under 3 us with the check. orjson
    escapes every code point as RFC 8785 does; a lone surrogate it refuses, and the reference
    refuses it too, as the standard says. A property test holds the two to the same bytes."""
    if _plain(value):
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            pass
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, UnicodeEncodeError) as exc:
        raise NotCanonical(str(exc)) from None


class NotCanonical(ValueError):
    """JSON that RFC 8785 cannot write (a number beyond its range, a lone surrogate). No
    appliance makes such an event, so in a trail it is damage or forgery, to be named as such."""


def _plain(value: Any) -> bool:
    """Whether orjson writes `value` as RFC 8785 does. Exact types only: this walk
    runs on every event, and anything unusual is the reference's to write."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(-SAFE_INTEGER <= value <= SAFE_INTEGER)
    if kind is dict:
        return all(type(key) is str and key.isascii() and _plain(item) for key, item in value.items())
    if kind is list:
        return all(_plain(item) for item in value)
    return False


def link(previous: str, event_digest: bytes) -> str:
    return hashlib.sha256(bytes.fromhex(previous) + event_digest).hexdigest()
