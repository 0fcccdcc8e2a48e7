"""Checks commands, swaps directories, and answers on cmd_result from what a command did.

A command that changes the custody state is not obeyed here: it becomes an `Order` for the
appliance's loop, which records its id in the commit of the events it causes and only then
calls `settle`, so "done" is never said of something that was not committed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from handoff.commands.parse import ParsedCommand, Refusal, parse_command
from handoff.commands.seen import SeenCommand, remember, was_seen
from handoff.core.inputs import Activity, ForceLogoff, Input, SetMaintenance
from handoff.directory import Directory
from handoff.errors import UsageError
from handoff.timefmt import rfc3339

PublishResult = Callable[[dict[str, Any]], None]

DONE = "done"
NOTHING_TO_DO = "nothing to do"
"""The answer (ok, no error) to a command whose wish already holds, e.g. `force_logoff` with no
live session: the id is remembered all the same, so a replay cannot act later."""


@dataclass(frozen=True)
class Order:
    """A command that passed every check, waiting to be applied and committed with its id."""

    name: str
    seen: SeenCommand
    input: Input


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

    def handle(self, name: str, payload: bytes, now: float) -> Order | None:
        """The order to apply, or None once the command is answered (refused, or a directory swapped).

        Never raises: the caller is the appliance's owning loop, which an exception would end.
        """
        keys = [*self._command_keys, *self._activity_keys] if name == "activity" else self._command_keys
        parsed = parse_command(name, payload, now, self._device_id, keys, allow_unsigned=self._allow_unsigned)
        if isinstance(parsed, Refusal):
            self._refuse(name, now, parsed)
            return None
        try:
            if was_seen(self._conn, parsed.command_id):
                self._refuse(name, now, Refusal("replayed", "this command id was already received", parsed.command_id))
                return None
            if parsed.name == "directory":
                self._swap_directory(parsed, now)
                return None
        except sqlite3.Error as exc:
            self._refuse(name, now, _unavailable(exc, parsed.command_id))
            return None
        return Order(name, SeenCommand(parsed.command_id, parsed.expires), _input(parsed))

    def settle(self, order: Order, now: float, *, ignored: str | None = None, failure: str | None = None) -> None:
        """Answer an order once its commit landed (`ignored` says why it changed nothing) or failed."""
        if failure is not None:
            self._refuse(order.name, now, Refusal("unavailable", failure, order.seen.id))
            return
        message = DONE if ignored is None else f"{NOTHING_TO_DO}: {ignored.replace('_', ' ')}"
        self._answer(order.name, order.seen.id, now, message=message)

    def _swap_directory(self, command: ParsedCommand, now: float) -> None:
        """The swap and the id in one transaction: a stale version is refused and its id not burnt."""
        seen = SeenCommand(command.command_id, command.expires)
        try:
            Directory(self._conn).replace(
                command.badges, command.version, within=lambda conn: remember(conn, seen, now)
            )
        except UsageError as stale:
            self._refuse(command.name, now, Refusal("stale_directory", str(stale), command.command_id))
            return
        message = f"directory version {command.version} with {len(command.badges)} badges"
        self._answer(command.name, command.command_id, now, message=message)

    def _refuse(self, name: str, now: float, refusal: Refusal) -> None:
        self._answer(name, refusal.command_id, now, error=refusal.error, message=refusal.message)

    def _answer(self, name: str, command_id: str | None, now: float, *, message: str, error: str | None = None) -> None:
        result: dict[str, Any] = {"id": command_id, "command": name, "ok": error is None, "message": message}
        if error is not None:
            result["error"] = error
        result["time"] = rfc3339(now)
        self._publish_result(result)


def _unavailable(exc: sqlite3.Error, command_id: str) -> Refusal:
    return Refusal("unavailable", f"the appliance's database is unavailable: {exc}", command_id)


def _input(command: ParsedCommand) -> Input:
    if command.name == "maintenance":
        return SetMaintenance(command.on)
    return ForceLogoff() if command.name == "force_logoff" else Activity()
