"""Entry point: parse arguments, run one command, turn known failures into one line.

Each command group lives in its own module exposing `register(subparsers)`; the module sets
`func` on its parser. Errors a user can act on are `HandoffError`s and print as one line on
stderr, never as a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from handoff import __version__
from handoff.cli import agent, audit, badges, doctor, ledger, outbox, provision, run, sim, status
from handoff.errors import HandoffError

COMMAND_GROUPS = (run, badges, status, outbox, sim, provision, doctor, audit, agent, ledger)


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad usage in one line with exit status 2, like every other error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: {message}\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="handoff", description="Badge-tap custody and session handoff appliance.")
    parser.add_argument("--version", action="version", version=f"handoff {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    for group in COMMAND_GROUPS:
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status: int = args.func(args)
    except HandoffError as exc:
        sys.stderr.write(f"handoff: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return status
