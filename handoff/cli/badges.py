"""`handoff badges import|list|revoke`: the local badge directory, for biomed staff."""

from __future__ import annotations

import argparse
from pathlib import Path

from handoff.badge_ref import load_secret
from handoff.cli.common import add_config_option, config_from, open_database
from handoff.directory import Directory, read_csv
from handoff.errors import UsageError


def register(badges: argparse.ArgumentParser) -> None:
    actions = badges.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=type(badges))

    importer = actions.add_parser("import", help="replace the directory with a CSV (uid,staff_id,name,role[,revoked])")
    importer.add_argument("csv", metavar="FILE.csv", type=Path)
    importer.add_argument(
        "--allow-empty", action="store_true", help="accept a CSV with no badges: empties the directory"
    )
    add_config_option(importer)
    importer.set_defaults(func=_import)

    lister = actions.add_parser("list", help="show the directory (badge references, never UIDs)")
    add_config_option(lister)
    lister.set_defaults(func=_list)

    revoker = actions.add_parser("revoke", help="revoke every badge of a staff member")
    revoker.add_argument("staff_id", metavar="STAFF_ID")
    add_config_option(revoker)
    revoker.set_defaults(func=_revoke)


def _import(args: argparse.Namespace) -> int:
    config = config_from(args)
    secret = load_secret(config.appliance.badge_secret_file)
    badges = read_csv(args.csv, secret)
    if not badges and not args.allow_empty:
        raise UsageError(
            f"{args.csv}: holds no badges, so importing it would empty the whole directory; "
            "pass --allow-empty to do that on purpose"
        )
    version = Directory(open_database(config)).replace(badges)
    revoked = sum(b.revoked for b in badges)
    print(f"imported {len(badges)} badges ({revoked} revoked) from {args.csv}; directory version {version}")
    return 0


def _list(args: argparse.Namespace) -> int:
    directory = Directory(open_database(config_from(args)))
    rows = [("STAFF_ID", "NAME", "ROLE", "STATUS", "BADGE_REF")]
    rows += [
        (b.staff_id, b.name, b.role, "revoked" if b.revoked else "active", b.badge_ref[:16]) for b in directory.badges()
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    print(f"{len(rows) - 1} badges, directory version {directory.version()}")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    count = Directory(open_database(config_from(args))).revoke(args.staff_id)
    print(f"revoked {count} badge(s) of {args.staff_id}; a live session of theirs ends within 2 s")
    return 0
