"""Which optional install ("extra") brings which third-party module, so that a command run where
its extra is missing says what to install instead of failing with a traceback.

A Pi installs `handoff[appliance]`, a workstation `handoff[agent]`, a server `handoff[ledger]`;
the base install holds only what all three share. setup.cfg lists the distributions; this
table lists the modules they provide, since a missing module cannot be looked up in the
metadata of a distribution that is not installed (tests/test_extras.py keeps the two in step).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from handoff.errors import HandoffError

EXTRA_OF_MODULE: Final = {
    "nfc": "appliance",
    "smartcard": "appliance",
    "gpiozero": "appliance",
    "gpiozerocli": "appliance",
    "evdev": "appliance",
    "pyudev": "appliance",
    "osdp": "appliance",
    "osdp_sys": "appliance",
    "serial": "appliance",
    "jeepney": "agent",
    "sqlalchemy": "ledger",
    "alembic": "ledger",
    "psycopg": "ledger",
    "argon2": "ledger",
    "pyotp": "ledger",
    "starlette": "ledger",
    "uvicorn": "ledger",
    "jinja2": "ledger",
    "multipart": "ledger",
    "python_multipart": "ledger",
    "authlib": "ledger",
    "httpx": "ledger",
    "itsdangerous": "ledger",
    "segno": "ledger",
    "nacl": "ledger",
    "_sodium": "ledger",
}


class MissingExtra(HandoffError):
    """A command needs a module of an extra this install does not have: exit 2, like bad config."""

    exit_code = 2

    def __init__(self, command: str, extra: str, module: str) -> None:
        super().__init__(
            f"{command} needs the {extra!r} extra, which is not installed here (no module {module!r}): "
            f"pip install 'handoff[{extra}]'"
        )
        self.extra = extra

    @staticmethod
    @contextmanager
    def named_for(command: str) -> Iterator[None]:
        """Turn a missing module, imported anywhere inside, into one line for `command`: the
        extra to install, or, for a module every install has, that this install is broken."""
        try:
            yield
        except ModuleNotFoundError as exc:
            module = (exc.name or str(exc)).partition(".")[0]
            extra = EXTRA_OF_MODULE.get(module)
            if extra is None:
                raise BrokenInstall(command, module) from None
            raise MissingExtra(command, extra, module) from None


class BrokenInstall(HandoffError):
    """A module that every install has is missing: reinstalling is the fix, not a traceback."""

    def __init__(self, command: str, module: str) -> None:
        super().__init__(f"{command} cannot run: this install of handoff lacks the module {module!r}; reinstall it")
