"""Hostile payloads on the command channel: each is refused on cmd_result, none may raise.

An exception escaping `CommandHandler.handle` ends the appliance's owning loop, and parsing
happens before the signature check, so any client able to publish on `cmd/<name>` could stop
a cart with one message. These payloads are the ones Python's json and sqlite3 turn into
exceptions other than `JSONDecodeError`.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from handoff import db
from handoff.directory import Directory
from handoff.timefmt import rfc3339
from tests.asyncapi_schemas import validator
from tests.kit.commands import NOW, REF, Channel

NAMES = ("force_logoff", "maintenance", "activity", "directory")


def _head(version: str = "2") -> str:
    return f'{{"id": "{uuid.uuid4()}", "issued_at": "{rfc3339(NOW - 1)}", "version": {version}'


def _badge(name: str) -> str:
    return f'{{"badge_ref": "{REF}", "staff_id": "ana", "name": "{name}", "role": "RN", "revoked": false}}'


NESTED = b"[" * 2000 + b"]" * 2000
HOSTILE = [
    *((name, "nested too deeply", NESTED) for name in NAMES),
    *((name, "nested inside an object", b'{"reason": ' + NESTED + b"}") for name in NAMES),
    ("directory", "an integer past Python's digit limit", (_head("9" * 5000) + ', "badges": []}').encode()),
    ("directory", "a lone surrogate in a name", (_head() + ', "badges": [' + _badge("\\ud800") + "]}").encode()),
]


@pytest.fixture
def channel(tmp_path: Path) -> Channel:
    return Channel(tmp_path, allow_unsigned=True)


@pytest.mark.parametrize("signed", [False, True], ids=["no key", "key configured"])
@pytest.mark.parametrize(("name", "what", "payload"), HOSTILE, ids=[f"{n}: {w}" for n, w, _ in HOSTILE])
def test_hostile_payload_is_refused_not_raised(
    tmp_path: Path, name: str, what: str, payload: bytes, signed: bool
) -> None:
    channel = Channel(tmp_path, Ed25519PrivateKey.generate() if signed else None)
    directory = Directory(channel.conn)
    assert channel.handler.handle(name, payload, NOW) is None
    assert channel.results[-1]["ok"] is False
    assert channel.results[-1]["error"] == "malformed", what
    validator("commandResult").validate(channel.results[-1])
    assert directory.version() == 0 and directory.badges() == []


def test_a_stale_directory_is_refused_without_burning_its_id(channel: Channel) -> None:
    badge = {"badge_ref": REF, "staff_id": "ana", "name": "Ana", "role": "RN", "revoked": False}
    assert channel.send("directory", {"version": 5, "badges": [badge]})[1]["ok"]
    remembered = channel.conn.execute("SELECT count(*) FROM seen_commands").fetchone()[0]

    _, refused = channel.send("directory", {"version": 5, "badges": []})

    assert refused["error"] == "stale_directory"
    validator("commandResult").validate(refused)
    assert channel.conn.execute("SELECT count(*) FROM seen_commands").fetchone()[0] == remembered
    assert Directory(channel.conn).badges()[0].staff_id == "ana"


@pytest.mark.parametrize("name", ["activity", "directory"])
def test_a_locked_database_is_answered_and_the_command_can_be_resent(tmp_path: Path, name: str) -> None:
    """`handoff badges import` in another process holds the write lock: the command is
    answered `unavailable`, and the very same payload is obeyed once the lock is gone."""
    channel = Channel(tmp_path, allow_unsigned=True)
    channel.conn.execute("PRAGMA busy_timeout = 0")
    fields = {"version": 3, "badges": []} if name == "directory" else {}
    payload = json.dumps({"id": str(uuid.uuid4()), "issued_at": rfc3339(NOW - 1), **fields}).encode()
    other = db.connect(tmp_path)
    other.execute("BEGIN IMMEDIATE")

    assert channel.deliver(name, payload)[0] == []
    assert channel.results[-1]["error"] == "unavailable"
    validator("commandResult").validate(channel.results[-1])

    other.execute("ROLLBACK")
    channel.deliver(name, payload)
    assert channel.results[-1]["ok"] is True, channel.results[-1]
