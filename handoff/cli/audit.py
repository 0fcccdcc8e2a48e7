"""`handoff audit verify FILE [--key PEM]...`: is this trail whole, in order, and signed?

Exit 0 intact (with how many trailing events no checkpoint covers yet), 1 broken (the first
bad `seq` and why, on stdout), 2 for bad usage or a file that is not JSON lines of events.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from handoff.audit.keys import load_public_keys
from handoff.audit.verify import Finding, NotATrail, verify_lines
from handoff.errors import UsageError


def register(audit: argparse.ArgumentParser) -> None:
    actions = audit.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=type(audit))
    verify = actions.add_parser(
        "verify", help="check every link and checkpoint of a trail (JSON lines: outbox export or broker capture)"
    )
    verify.add_argument("file", type=Path, metavar="FILE")
    verify.add_argument(
        "--key",
        type=Path,
        action="append",
        default=[],
        metavar="PEM",
        help="public key(s) that may sign checkpoints (repeatable; a file may hold several)",
    )
    verify.set_defaults(func=_verify)


def _verify(args: argparse.Namespace) -> int:
    keys: list[Ed25519PublicKey] = []
    for path in args.key:
        keys += load_public_keys(path, "--key")
    try:
        with args.file.open(encoding="utf-8") as lines:
            verdict = verify_lines(iter(lines), keys)
    except OSError as exc:
        raise UsageError(f"{args.file}: cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{args.file}: not UTF-8 text, so not JSON lines") from None
    except NotATrail as exc:
        raise UsageError(f"{args.file}: not a trail of JSON lines: {exc}") from None
    if isinstance(verdict, Finding):
        print(verdict.describe())
        return 1
    print(verdict.describe())
    return 0
