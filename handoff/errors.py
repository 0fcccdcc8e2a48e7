"""Errors that end a command with one plain line instead of a traceback.

Biomed staff read these on a cart in a corridor: the line must name the file, key or value
at fault, and the exit status must let scripts tell bad usage (2) from a runtime failure (1).
"""

from __future__ import annotations

from pathlib import Path


class HandoffError(Exception):
    """A failure the user can act on; `exit_code` is what the CLI exits with."""

    exit_code = 1


class ConfigError(HandoffError):
    """Bad configuration or bad usage: exit status 2, as the command line promises.

    `key` is the dotted config key at fault (`readers[1].trust_anchors`) when one is, so callers
    such as `handoff provision` can name their own flag for it without reading the message.
    """

    exit_code = 2

    def __init__(self, message: str, *, key: str | None = None, problem: str | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.problem = problem or message

    @classmethod
    def at(cls, source: Path, key: str, problem: str) -> ConfigError:
        """The refusal of one key of the config file `source`."""
        return cls(f"config {source}: {key} {problem}", key=key, problem=problem)


class UsageError(HandoffError):
    """Bad input on the command line: an unusable file, an unknown staff id. Exit status 2."""

    exit_code = 2
