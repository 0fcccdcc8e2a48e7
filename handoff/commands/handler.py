"""Applies parsed commands: remembers ids against replay, swaps directories, answers on cmd_result."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from handoff.commands.parse import ParsedCommand, Refusal, parse_command
from handoff.core.inputs import Activity, ForceLogoff, Input, SetMaintenance
from handoff.db import transaction
from handoff.directory import Directory
from handoff.errors import UsageError
from handoff.timefmt import rfc3339

PublishResult = Callable[[dict[str, Any]], None]


class CommandHandler:
    def __init__(
        self,
        conn: sqlite3.Connection,
        device_id: str,
        key: Ed25519PublicKey | None,
        publish_result: PublishResult,
    ) -> None:
        self._conn = conn
        self._device_id = device_id
        self._key = key
        self._publish_result = publish_result

    def handle(self, name: str, payload: bytes, now: float) -> list[Input]:
        """The core inputs the command asks for; the answer goes out on cmd_result either way."""
        parsed = parse_command(name, payload, now, self._device_id, self._key)
        if isinstance(parsed, ParsedCommand) and not self._remember(parsed, now):
            parsed = Refusal("replayed", "this command id was already received", parsed.command_id)
        if isinstance(parsed, Refusal):
            self._answer(name, parsed.command_id, now, error=parsed.error, message=parsed.message)
            return []
        inputs: list[Input] = []
        message = "done"
        match parsed.name:
            case "force_logoff":
                inputs = [ForceLogoff()]
            case "activity":
                inputs = [Activity()]
            case "maintenance":
                inputs = [SetMaintenance(parsed.on)]
            case "directory":
                try:
                    Directory(self._conn).replace(parsed.badges, parsed.version)
                except UsageError as stale:
                    self._answer(name, parsed.command_id, now, error="stale_directory", message=str(stale))
                    return []
                message = f"directory version {parsed.version} with {len(parsed.badges)} badges"
        self._answer(name, parsed.command_id, now, message=message)
        return inputs

    def _remember(self, command: ParsedCommand, now: float) -> bool:
        with transaction(self._conn):
            self._conn.execute("DELETE FROM seen_commands WHERE expires < ?", (now,))
            inserted = self._conn.execute(
                "INSERT OR IGNORE INTO seen_commands (id, expires) VALUES (?, ?)", (command.command_id, command.expires)
            ).rowcount
        return bool(inserted)

    def _answer(self, name: str, command_id: str | None, now: float, *, message: str, error: str | None = None) -> None:
        result: dict[str, Any] = {"id": command_id, "command": name, "ok": error is None, "message": message}
        if error is not None:
            result["error"] = error
        result["time"] = rfc3339(now)
        self._publish_result(result)
