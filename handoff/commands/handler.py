"""Applies parsed commands: remembers ids against replay, swaps directories, answers on cmd_result."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
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
        command_keys: Sequence[Ed25519PublicKey],
        publish_result: PublishResult,
        *,
        allow_unsigned: bool = False,
        activity_keys: Sequence[Ed25519PublicKey] = (),
    ) -> None:
        self._conn = conn
        self._device_id = device_id
        self._command_keys = command_keys
        """appliance.command_key_file: during a rotation the old and the new key both sign commands."""
        self._activity_keys = activity_keys
        """The agents' keys (agent.keys_file): they may sign activity reports, and nothing else."""
        self._allow_unsigned = allow_unsigned
        self._publish_result = publish_result

    def handle(self, name: str, payload: bytes, now: float) -> list[Input]:
        """The core inputs the command asks for; the answer goes out on cmd_result either way.

        Never raises: the caller is the appliance's owning loop, which an exception would end.
        """
        keys = [*self._command_keys, *self._activity_keys] if name == "activity" else self._command_keys
        parsed = parse_command(name, payload, now, self._device_id, keys, allow_unsigned=self._allow_unsigned)
        if isinstance(parsed, Refusal):
            return self._refuse(name, now, parsed)
        try:
            obeyed = self._obey(parsed, now)
        except sqlite3.Error as exc:
            obeyed = Refusal("unavailable", f"the appliance's database is unavailable: {exc}", parsed.command_id)
        if isinstance(obeyed, Refusal):
            return self._refuse(name, now, obeyed)
        message, inputs = obeyed
        self._answer(name, parsed.command_id, now, message=message)
        return inputs

    def _obey(self, command: ParsedCommand, now: float) -> tuple[str, list[Input]] | Refusal:
        """Record the id only once the command is obeyed, so a refusal changes nothing.

        A directory is swapped before its id is recorded; if the appliance dies in between, a
        replay is still refused, as stale, since its version is no longer newer.
        """
        replayed = Refusal("replayed", "this command id was already received", command.command_id)
        if command.name != "directory":
            if not self._remember(command, now):
                return replayed
            return "done", [_input(command)]
        if self._conn.execute("SELECT 1 FROM seen_commands WHERE id = ?", (command.command_id,)).fetchone():
            return replayed
        try:
            Directory(self._conn).replace(command.badges, command.version)
        except UsageError as stale:
            return Refusal("stale_directory", str(stale), command.command_id)
        self._remember(command, now)
        return f"directory version {command.version} with {len(command.badges)} badges", []

    def _remember(self, command: ParsedCommand, now: float) -> bool:
        """Check and record in one statement, so two copies of one command cannot both pass."""
        with transaction(self._conn):
            self._conn.execute("DELETE FROM seen_commands WHERE expires < ?", (now,))
            inserted = self._conn.execute(
                "INSERT OR IGNORE INTO seen_commands (id, expires) VALUES (?, ?)", (command.command_id, command.expires)
            ).rowcount
        return bool(inserted)

    def _refuse(self, name: str, now: float, refusal: Refusal) -> list[Input]:
        self._answer(name, refusal.command_id, now, error=refusal.error, message=refusal.message)
        return []

    def _answer(self, name: str, command_id: str | None, now: float, *, message: str, error: str | None = None) -> None:
        result: dict[str, Any] = {"id": command_id, "command": name, "ok": error is None, "message": message}
        if error is not None:
            result["error"] = error
        result["time"] = rfc3339(now)
        self._publish_result(result)


def _input(command: ParsedCommand) -> Input:
    if command.name == "maintenance":
        return SetMaintenance(command.on)
    return ForceLogoff() if command.name == "force_logoff" else Activity()
