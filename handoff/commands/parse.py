"""From raw MQTT payload bytes to a typed command, or a refusal that changes nothing. Pure."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from handoff.commands.limits import DEFAULT_MAX_BYTES, MAX_BYTES
from handoff.commands.signing import verify_signature
from handoff.directory import Badge, text_problem
from handoff.staff_id import RULE, staff_id_problem

NAMES: Final = ("force_logoff", "maintenance", "activity", "directory")
MAX_AGE_S: Final = 300.0
MAX_SKEW_S: Final = 60.0
BADGE_KEYS: Final = {"badge_ref", "staff_id", "name", "role", "revoked"}
MAX_DIRECTORY_VERSION: Final = 2**53 - 1
"""The largest integer every JSON reader holds exactly; a bigger one would also freeze the directory."""


@dataclass(frozen=True)
class Refusal:
    error: str
    message: str
    command_id: str | None = None


@dataclass(frozen=True)
class ParsedCommand:
    name: str
    command_id: str
    expires: float
    """Until when the id must be remembered to refuse a replay."""
    on: bool = False
    version: int = 0
    badges: tuple[Badge, ...] = ()


def parse_command(
    name: str,
    payload: bytes,
    now: float,
    device_id: str,
    keys: Sequence[Ed25519PublicKey],
    *,
    allow_unsigned: bool,
) -> ParsedCommand | Refusal:
    """Every command changes something, so each must be signed, by any of `keys`, unless
    `allow_unsigned` (a lab bench) says not."""
    if name not in NAMES:
        return Refusal("unknown_command", f"no command named {name!r}; known: {', '.join(NAMES)}")
    limit = MAX_BYTES.get(name, DEFAULT_MAX_BYTES)
    if len(payload) > limit:
        return Refusal("oversized", f"payload of {len(payload)} bytes exceeds {limit} for {name}")
    body = _decode(payload)
    if isinstance(body, Refusal):
        return body
    if not isinstance(body, dict):
        return Refusal("malformed", "payload must be a JSON object")
    command_id = body.get("id")
    if not isinstance(command_id, str) or not _is_uuid(command_id):
        return Refusal("invalid", "id must be a UUID")
    freshness = _fresh_until(body, now)
    if isinstance(freshness, Refusal):
        return Refusal(freshness.error, freshness.message, command_id)
    if keys and "signature" in body:
        if not any(verify_signature(key, device_id, name, body) for key in keys):
            return Refusal("bad_signature", "signature does not verify for this device and command", command_id)
    elif not allow_unsigned:
        where = "" if keys else " (this appliance has no appliance.command_key_file: it obeys none)"
        return Refusal("unsigned", f"commands must be signed with the site command key{where}", command_id)
    fields = _fields(name, body)
    if isinstance(fields, Refusal):
        return Refusal(fields.error, fields.message, command_id)
    return ParsedCommand(name=name, command_id=command_id, expires=freshness, **fields)


def _decode(payload: bytes) -> Any:
    """JSON as Python reads it, or a refusal; never an exception.

    json.loads raises more than JSONDecodeError on hostile input: RecursionError for deep
    nesting, ValueError past Python's integer digit limit. And it accepts `\\ud800`, a lone
    surrogate that no UTF-8 encoder (SQLite's, the signer's) will take later. Any of these
    escaping would end the appliance's loop, before a signature is even checked.
    """
    try:
        body = json.loads(payload)
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except RecursionError:
        return Refusal("malformed", "payload is nested too deeply")
    except UnicodeEncodeError:
        return Refusal("malformed", "payload holds an escaped lone surrogate, which is not Unicode text")
    except ValueError:
        return Refusal("malformed", "payload is not JSON")
    return body


def _fresh_until(body: dict[str, Any], now: float) -> float | Refusal:
    issued = _timestamp(body.get("issued_at"))
    if issued is None:
        return Refusal("invalid", "issued_at must be an RFC 3339 time")
    if issued > now + MAX_SKEW_S:
        return Refusal("expired", "issued_at lies in the future; check the sender's clock")
    expires = issued + MAX_AGE_S
    if "expires_at" in body:
        explicit = _timestamp(body["expires_at"])
        if explicit is None:
            return Refusal("invalid", "expires_at must be an RFC 3339 time")
        expires = min(expires, explicit)
    if expires <= now:
        return Refusal("expired", "command has expired")
    return expires


def _fields(name: str, body: dict[str, Any]) -> dict[str, Any] | Refusal:
    if name == "maintenance":
        if not isinstance(body.get("on"), bool):
            return Refusal("invalid", "maintenance needs on: true or false")
        return {"on": body["on"]}
    if name != "directory":
        return {}
    version, badges = body.get("version"), body.get("badges")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= MAX_DIRECTORY_VERSION:
        return Refusal("invalid", f"directory needs an integer version from 1 to {MAX_DIRECTORY_VERSION} (2^53 - 1)")
    if not isinstance(badges, list):
        return Refusal("invalid", "directory needs a list of badges")
    parsed = []
    for index, entry in enumerate(badges):
        badge = _badge(entry)
        if badge is None:
            return Refusal(
                "invalid",
                f"badges[{index}] needs badge_ref (64 hex), staff_id ({RULE}), name, role (printable text), revoked",
            )
        parsed.append(badge)
    if len({b.badge_ref for b in parsed}) != len(parsed):
        return Refusal("invalid", "a badge_ref appears twice")
    return {"version": version, "badges": tuple(parsed)}


def _badge(entry: Any) -> Badge | None:
    if not isinstance(entry, dict) or set(entry) - BADGE_KEYS:
        return None
    ref = entry.get("badge_ref")
    texts = [entry.get(k) for k in ("staff_id", "name", "role")]
    revoked = entry.get("revoked", False)
    if not isinstance(ref, str) or len(ref) != 64 or any(c not in "0123456789abcdef" for c in ref):
        return None
    if not all(isinstance(t, str) and text_problem(t) is None for t in texts) or not isinstance(revoked, bool):
        return None
    if staff_id_problem(texts[0]) is not None:
        return None
    staff_id, badge_name, role = (str(t) for t in texts)
    return Badge(ref, staff_id, badge_name, role, revoked)


def _timestamp(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo else None


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True
