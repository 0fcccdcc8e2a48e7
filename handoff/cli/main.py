"""Entry point: parse arguments, run one command, turn known failures into one line.

Each command group lives in its own module exposing `register(parser)`, which fills in the
group's own parser and sets `func` on it. Only the group named on the command line is imported:
`handoff status` on a Pi must not pay for the ledger's web stack, and `--help` or `--version`
pays for none of them. A group module imports what its handlers need inside each handler when
those needs differ, or, as the ledger's does, keeps its parsers apart from its handlers (`ledger
who` needs no web server, and `ledger run` starts its MQTT session before it loads the database
layer); so adding a command means adding a line to `GROUPS` below, or a parser and a handler to
its group's modules.

Errors a user can act on are `HandoffError`s and print as one line on stderr, never as a
traceback; so does a command run where the extra it needs is not installed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import import_module
from typing import Final, NamedTuple

from handoff import __version__
from handoff.errors import HandoffError
from handoff.extras import MissingExtra


class Group(NamedTuple):
    module: str
    help: str


GROUPS: Final = {
    "run": Group("handoff.cli.run", "run the appliance in the foreground until SIGTERM/SIGINT"),
    "badges": Group("handoff.cli.badges", "manage the badge directory"),
    "status": Group("handoff.cli.status", "state, holder, outbox depth, broker connectivity, disk, readers"),
    "outbox": Group("handoff.cli.outbox", "inspect the durable event outbox"),
    "sim": Group("handoff.cli.sim", "present simulated badges to a running appliance"),
    "provision": Group("handoff.cli.provision", "write this cart's config, TLS key and CSR, and site secret"),
    "doctor": Group("handoff.cli.doctor", "self-test this cart and say how to fix what is wrong"),
    "audit": Group("handoff.cli.audit", "verify a tamper-evident event trail"),
    "agent": Group("handoff.cli.agent", "the agent on the attached device: ends sessions, sends signed receipts"),
    "ledger": Group("handoff.cli.ledger", "the custody record of every appliance (docs/ledger.md)"),
}


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad usage in one line with exit status 2, like every other error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: {message}\n")
        raise SystemExit(2)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, with the arguments of `command`'s group only (every group when None)."""
    parser = _Parser(prog="handoff", description="Badge-tap custody and session handoff appliance.")
    parser.add_argument("--version", action="version", version=f"handoff {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    for name, group in GROUPS.items():
        group_parser = sub.add_parser(name, help=group.help)
        if command is None or command == name:
            import_module(group.module).register(group_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    command = next((word for word in words if not word.startswith("-")), "")
    try:
        with MissingExtra.named_for(f"handoff {command}"):
            args = build_parser(command).parse_args(words)
            status: int = args.func(args)
    except HandoffError as exc:
        sys.stderr.write(f"handoff: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return status
