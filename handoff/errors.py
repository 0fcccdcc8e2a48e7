"""Errors that end a command with one plain line instead of a traceback.

Biomed staff read these on a cart in a corridor: the line must name the file, key or value
at fault, and the exit status must let scripts tell bad usage (2) from a runtime failure (1).
"""


class HandoffError(Exception):
    """A failure the user can act on; `exit_code` is what the CLI exits with."""

    exit_code = 1


class ConfigError(HandoffError):
    """Bad configuration or bad usage: exit status 2, as SPEC section 5 asks."""

    exit_code = 2


class UsageError(HandoffError):
    """Bad input on the command line: an unusable file, an unknown staff id. Exit status 2."""

    exit_code = 2
