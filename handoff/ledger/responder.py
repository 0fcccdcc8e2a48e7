"""Publishing the ledger's queued commands (responses.py), signed with `ledger.command_key_file`.

Each is signed when it is published, with that moment as `issued_at`: the appliance refuses a
command older than five minutes, and a broker outage may last longer than that. Its id stays
the one queued, so a copy published again (its PUBACK lost with the connection) is refused by
the appliance as a replay and acts once. A command is settled as sent only on its PUBACK.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection

from handoff import compact_json
from handoff.commands.signing import sign_command
from handoff.ledger import responses
from handoff.timefmt import rfc3339

log = logging.getLogger("handoff.ledger")

RESEND_AFTER_S: Final = 10.0
"""A command the broker has not acknowledged this long after it was handed to paho is published again."""
BY: Final = "handoff-ledger"

Publish = Callable[[str, bytes], int | None]
"""Hands a message to the broker's client: its MQTT message id, None if it could not."""


class Responder:
    def __init__(self, key: Ed25519PrivateKey, prefix: str, publish: Publish) -> None:
        self._key = key
        self._prefix = prefix.rstrip("/")
        self._publish = publish
        self._in_flight: dict[int, tuple[responses.Due, float]] = {}
        """By MQTT message id: the command and when it was handed to paho."""
        self._acks: dict[int, str | None] = {}
        """PUBACKs by message id, from paho's thread: None, or why the broker refused it."""

    def acknowledged(self, mid: int, refusal: str | None) -> None:
        """paho's `on_publish`, on its network thread: a PUBACK, negative (MQTT 5) when the
        broker refused the publish (its ACL): that command never reaches the appliance."""
        self._acks[mid] = refusal

    def send(self, conn: Connection, connected: bool, now: float) -> None:
        """Settle what the broker acknowledged; while connected, publish what is due."""
        for mid, (command, handed) in list(self._in_flight.items()):
            if mid in self._acks:
                refusal = self._acks.pop(mid)
                if refusal is None:
                    responses.sent(conn, command, now)
                else:
                    responses.refused(conn, command, refusal)
                del self._in_flight[mid]
            elif now - handed > RESEND_AFTER_S:
                del self._in_flight[mid]
        if not connected:
            return
        flying = {command.id for command, _ in self._in_flight.values()}
        for command in responses.due(conn):
            if command.id not in flying:
                topic = f"{self._prefix}/{command.site}/{command.device_id}/cmd/{command.command}"
                given = self._publish(topic, self._signed(command, now))
                if given is None:
                    continue
                self._in_flight[given] = (command, now)
                log.info("published %s %s to %s", command.command, command.id, command.device_id)

    def _signed(self, command: responses.Due, now: float) -> bytes:
        body = {
            "id": command.id,
            "issued_at": rfc3339(now),
            "reason": f"anomaly (exception {command.exception_id})",
            "by": BY,
        }
        return compact_json.dumps(sign_command(self._key, command.device_id, command.command, body)).encode()
