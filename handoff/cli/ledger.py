"""`handoff ledger run | serve | who | history | exceptions | report | enrol | devices | status |
doctor | users | directory | assets` (docs/ledger.md): the parsers.

A handler is imported only when its command runs, so that the parsers load nothing of the
database layer: `ledger run` starts its MQTT session before it loads SQLAlchemy and the ingest
modules (most of its start-up; ledger_run.py), a query loads neither a web server nor a broker
client, and `--help` loads none of them.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from importlib import import_module
from pathlib import Path

from handoff.ledger.roles import ROLES

Handler = Callable[[argparse.Namespace], int]


def _later(name: str, module: str = "ledger_commands") -> Handler:
    """The handler `name` of `handoff.cli.<module>`, imported when its command runs."""

    def handle(args: argparse.Namespace) -> int:
        handler: Handler = getattr(import_module(f"handoff.cli.{module}"), name)
        return handler(args)

    return handle


def register(ledger: argparse.ArgumentParser) -> None:
    actions = ledger.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=type(ledger))

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = actions.add_parser(name, help=help_text)
        parser.add_argument(
            "-c",
            "--config",
            metavar="FILE",
            help="ledger config (default: $HANDOFF_LEDGER_CONFIG, then /etc/handoff/ledger.toml)",
        )
        return parser

    consume = command("run", "consume every appliance's events into the database until SIGTERM")
    consume.set_defaults(func=_later("run", "ledger_run"))
    command("serve", "the web console on [console] listen, until SIGTERM").set_defaults(func=_later("serve"))
    asked = command("who", "who held DEVICE at TIME, and whether they were logged in")
    asked.add_argument("device")
    asked.add_argument("--at", required=True, metavar="TIME", help="RFC 3339, e.g. 2027-01-15T08:00:00Z")
    asked.add_argument("--format", choices=("text", "json"), default="text")
    asked.set_defaults(func=_later("who"))
    past = command("history", "custody and session intervals of a device or a staff member")
    whose = past.add_mutually_exclusive_group(required=True)
    whose.add_argument("--device")
    whose.add_argument("--staff")
    past.add_argument("--since", metavar="TIME")
    past.add_argument("--until", metavar="TIME")
    past.add_argument("--format", choices=("table", "csv", "json"), default="table")
    past.set_defaults(func=_later("history"))
    listed = command("exceptions", "open exceptions, oldest first")
    listed.add_argument("--format", choices=("text", "json"), default="text")
    listed.set_defaults(func=_later("exceptions"))
    evidence = command("report", "the evidence for a periodic review, per checklist control, over a window")
    evidence.add_argument(
        "--from", dest="start", required=True, metavar="TIME", help="RFC 3339, e.g. 2027-01-01T00:00:00Z"
    )
    evidence.add_argument("--until", required=True, metavar="TIME", help="RFC 3339, the end of the window (excluded)")
    evidence.add_argument("--format", choices=("html", "csv", "json"), default="html")
    evidence.set_defaults(func=_later("report"))
    _register_trust(command)
    state = command("status", "whether each running ledger is connected, how far behind, what it refused")
    state.add_argument("--format", choices=("text", "json"), default="text")
    state.set_defaults(func=_later("status"))
    command("doctor", "check the database and what the broker supports").set_defaults(func=_later("doctor"))
    _register_people_and_registers(command)


def _register_people_and_registers(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """`ledger users ...` (console accounts) and `ledger directory|assets import` (names and equipment)."""
    people = command("users", "console accounts: add, list, role, disable, enable, reset")
    account_actions = people.add_subparsers(dest="users_action", required=True, metavar="ACTION")

    def account_command(name: str, help_text: str, func: Handler, *, named: bool = True) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = account_actions.add_parser(name, help=help_text)
        if named:
            parser.add_argument("name")
        parser.add_argument("-c", "--config", metavar="FILE", default=argparse.SUPPRESS)
        parser.set_defaults(func=func)
        return parser

    directory = command("directory", "the staff directory: names and roles for the console")
    directory_actions = directory.add_subparsers(dest="directory_action", required=True, metavar="ACTION")
    imported = directory_actions.add_parser(
        "import",
        help="replace it with the badge CSV the appliances use (uid,staff_id,name,role[,revoked]); uids are not kept",
    )
    imported.add_argument("csv", metavar="FILE.csv", type=Path)
    imported.add_argument("-c", "--config", metavar="FILE", default=argparse.SUPPRESS)
    imported.set_defaults(func=_later("import_directory"))
    register = command("assets", "the asset register: model, unit, asset tag and site of each device")
    register_actions = register.add_subparsers(dest="assets_action", required=True, metavar="ACTION")
    imported = register_actions.add_parser("import", help="replace it with a CSV (device_id,model,unit,asset_tag,site)")
    imported.add_argument("csv", metavar="FILE.csv", type=Path)
    imported.add_argument("-c", "--config", metavar="FILE", default=argparse.SUPPRESS)
    imported.set_defaults(func=_later("import_assets"))
    add = account_command("add", "add an account; the password is read from standard input", _later("add_user"))
    add.add_argument("--role", choices=ROLES, required=True)
    listed_help = "every account: role, enabled or not, live sessions, local or OpenID Connect"
    listing = account_command("list", listed_help, _later("list_users"), named=False)
    listing.add_argument("--format", choices=("text", "json"), default="text")
    role = account_command("role", "give an account another role (from its next request on)", _later("user_role"))
    role.add_argument("role", choices=ROLES)
    account_command("disable", "refuse the account's logins and end its sessions", _later("disable_user"))
    account_command("enable", "let a disabled account log in again", _later("enable_user"))
    reset_help = "a new password, read from standard input; ends the account's sessions"
    account_command("reset", reset_help, _later("reset_user"))
    totp_help = "a TOTP second factor and 10 recovery codes for the account (shown once; replaces any)"
    account_command("totp", totp_help, _later("totp_user"))


def _register_trust(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    enrolling = command("enrol", "believe DEVICE's messages signed by the key in FILE (re-enrolling replaces it)")
    enrolling.add_argument("device")
    enrolling.add_argument("--key", required=True, metavar="FILE", help="the appliance's audit.pub (PEM)")
    enrolling.add_argument(
        "--agent-key", action="append", default=[], metavar="FILE", help="an agent's public key PEM; repeatable"
    )
    enrolling.set_defaults(func=_later("enrol", "ledger_trust"))
    shown = command("devices", "enrolled devices and pending ones (heard, not enrolled), with fingerprints")
    shown.add_argument("--format", choices=("text", "json"), default="text")
    shown.set_defaults(func=_later("devices", "ledger_trust"))
