"""The command channel on a real database, with a clock the test gives: what the broker would
deliver to `P/S/D/cmd/<name>`, and the `cmd_result` each command is answered with."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from handoff import db
from handoff.commands.handler import CommandHandler
from handoff.commands.seen import remember
from handoff.commands.signing import sign_command
from handoff.core.inputs import Input
from handoff.db import transaction
from handoff.timefmt import rfc3339

NOW = 1_800_000_000.0
DEVICE = "WOW-3N-07"
REF = "ab" * 32


class Channel:
    """The appliance's command handler on its own database, fed payloads as the broker would."""

    def __init__(self, data_dir: Path, key: Ed25519PrivateKey | None = None, *, allow_unsigned: bool = False) -> None:
        self.conn = db.connect(data_dir)
        self.results: list[dict[str, Any]] = []
        self.key = key
        public = [key.public_key()] if key else []
        self.handler = CommandHandler(self.conn, DEVICE, public, self.results.append, allow_unsigned=allow_unsigned)

    def send(
        self, name: str, fields: dict[str, Any] | None = None, *, now: float = NOW, sign: bool = True, **over: Any
    ) -> tuple[list[Input], dict[str, Any]]:
        payload = {"id": str(uuid.uuid4()), "issued_at": rfc3339(NOW - 1), **(fields or {}), **over}
        if self.key is not None and sign:
            payload = sign_command(self.key, DEVICE, name, payload)
        return self.deliver(name, json.dumps(payload).encode(), now)

    def deliver(self, name: str, raw: bytes, now: float = NOW) -> tuple[list[Input], dict[str, Any]]:
        """As the appliance's loop does: an order's id is committed, then the order is settled."""
        order = self.handler.handle(name, raw, now)
        if order is None:
            return [], self.results[-1]
        try:
            with transaction(self.conn):
                remember(self.conn, order.seen, now)
        except sqlite3.Error as exc:
            self.handler.settle(order, now, failure=str(exc))
            return [], self.results[-1]
        self.handler.settle(order, now)
        return [order.input], self.results[-1]
