"""`handoff ledger run | serve | who | history | exceptions | users add` (docs/ledger.md);
`enrol` and `devices` live in ledger_trust.py."""

from __future__ import annotations

import argparse
import csv
import getpass
import logging
import signal
import ssl
import sys
import time
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from argon2 import PasswordHasher
from sqlalchemy import Engine, insert, select

from handoff import compact_json
from handoff.cli import ledger_trust as trust
from handoff.cli.run import configure_logging
from handoff.errors import ConfigError, UsageError
from handoff.ledger.config import LedgerConfig, load_ledger_config, resolve_ledger_config_path
from handoff.ledger.console.app import create_app
from handoff.ledger.console.logins import ROLES
from handoff.ledger.consumer import Consumer
from handoff.ledger.database import engine_for
from handoff.ledger.queries import history, open_exceptions, who
from handoff.ledger.schema import audit_log, users
from handoff.timefmt import rfc3339

MIN_PASSWORD = 12
log = logging.getLogger("handoff.ledger")


def register(sub: Any) -> None:
    ledger = sub.add_parser("ledger", help="the custody record of every appliance (docs/ledger.md)")
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

    command("run", "consume every appliance's events into the database until SIGTERM").set_defaults(func=_run)
    command("serve", "the web console on [console] listen, until SIGTERM").set_defaults(func=_serve)
    asked = command("who", "who held DEVICE at TIME, and whether they were logged in")
    asked.add_argument("device")
    asked.add_argument("--at", required=True, metavar="TIME", help="RFC 3339, e.g. 2027-01-15T08:00:00Z")
    asked.add_argument("--format", choices=("text", "json"), default="text")
    asked.set_defaults(func=_who)
    past = command("history", "custody and session intervals of a device or a staff member")
    whose = past.add_mutually_exclusive_group(required=True)
    whose.add_argument("--device")
    whose.add_argument("--staff")
    past.add_argument("--since", metavar="TIME")
    past.add_argument("--until", metavar="TIME")
    past.add_argument("--format", choices=("table", "csv", "json"), default="table")
    past.set_defaults(func=_history)
    listed = command("exceptions", "open exceptions, oldest first")
    listed.add_argument("--format", choices=("text", "json"), default="text")
    listed.set_defaults(func=_exceptions)
    trust.register(command)
    accounts = command("users", "console accounts")
    account_actions = accounts.add_subparsers(dest="users_action", required=True, metavar="ACTION")
    add = account_actions.add_parser("add", help="add an account; the password is read from standard input")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, required=True)
    add.add_argument("-c", "--config", metavar="FILE", default=argparse.SUPPRESS)
    add.set_defaults(func=_add_user)


def _open(args: argparse.Namespace) -> tuple[LedgerConfig, Engine]:
    config = load_ledger_config(resolve_ledger_config_path(getattr(args, "config", None)))
    return config, engine_for(config.ledger.database)


def _instant(text: str | None, option: str) -> float | None:
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option} {text!r} is not an RFC 3339 time, e.g. 2027-01-15T08:00:00Z") from None
    if parsed.tzinfo is None:
        raise UsageError(f"{option} {text!r} has no UTC offset; add Z or +01:00")
    return parsed.timestamp()


def _run(args: argparse.Namespace) -> int:
    config, engine = _open(args)
    configure_logging()
    if config.ledger.allow_untrusted:
        log.warning("ledger.allow_untrusted is on: every message is believed, signed or not (a lab bench only)")
    consumer = Consumer(config, engine)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        consumer.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    consumer.run()
    return 0


def _serve(args: argparse.Namespace) -> int:
    config, engine = _open(args)
    configure_logging()
    console = config.console
    if console.cert_file is not None and console.key_file is not None:
        _check_tls_pair(console.cert_file, console.key_file)
    with engine.connect() as conn:
        if conn.execute(select(users.c.name).limit(1)).first() is None:
            log.warning("no console accounts yet: add one with `handoff ledger users add NAME --role admin`")
    scheme = "https" if console.tls else "http"
    log.info("console at %s://%s/", scheme, console.listen)
    uvicorn.run(
        create_app(config, engine),
        host=console.host,
        port=console.port,
        ssl_certfile=console.cert_file,
        ssl_keyfile=console.key_file,
        log_config=None,
        server_header=False,
        date_header=False,
    )
    return 0


def _check_tls_pair(cert_file: Path, key_file: Path) -> None:
    """The certificate and key load together, or one line says which file is at fault."""
    for key, path in (("console.cert_file", cert_file), ("console.key_file", key_file)):
        if not path.is_file():
            raise ConfigError(f"{key} {path}: no such file", key=key)
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert_file, key_file)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            f"console.cert_file {cert_file} / console.key_file {key_file}: not a certificate and its key ({exc})",
            key="console.cert_file",
        ) from None


def _who(args: argparse.Namespace) -> int:
    at = _instant(args.at, "--at")
    assert at is not None
    _, engine = _open(args)
    with engine.connect() as conn:
        holder = who(conn, args.device, at)
    body = {
        "device_id": holder.device_id,
        "at": rfc3339(holder.at),
        "staff_id": holder.staff_id,
        "since": rfc3339(holder.since) if holder.since is not None else None,
        "logged_in": holder.logged_in,
        "session_id": holder.session_id,
    }
    if args.format == "json":
        print(compact_json.dumps(body))
    elif holder.staff_id is None:
        print(f"{holder.device_id} at {body['at']}: nobody held it")
    else:
        state = "logged in" if holder.logged_in else "not logged in"
        print(f"{holder.device_id} at {body['at']}: {holder.staff_id}, {state}, holding since {body['since']}")
    return 0


def _history(args: argparse.Namespace) -> int:
    since, until = _instant(args.since, "--since"), _instant(args.until, "--until")
    _, engine = _open(args)
    with engine.connect() as conn:
        intervals = history(conn, device_id=args.device, staff_id=args.staff, since=since, until=until)
    rows = [
        {
            "device_id": interval.device_id,
            "staff_id": interval.staff_id,
            "from": rfc3339(interval.start),
            "to": rfc3339(interval.end) if interval.end is not None else None,
            "ended_by": interval.ended_by,
            "sessions": interval.sessions,
            "logoffs": interval.logoffs,
        }
        for interval in intervals
    ]
    _print_rows(rows, args.format)
    return 0


def _exceptions(args: argparse.Namespace) -> int:
    _, engine = _open(args)
    with engine.connect() as conn:
        found = open_exceptions(conn)
    rows = [
        {"type": e.type, "device": e.device_id, "source": e.source, "opened": rfc3339(e.opened), "detail": e.detail}
        for e in found
    ]
    if args.format == "json":
        print(compact_json.dumps(rows))
    else:
        for row in rows:
            print(f"{row['type']}\t{row['device'] or '-'}\t{row['source'] or '-'}\t{row['opened']}\t{row['detail']}")
    return 0


def _add_user(args: argparse.Namespace) -> int:
    password = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    if len(password) < MIN_PASSWORD:
        raise UsageError(f"the password must have at least {MIN_PASSWORD} characters")
    _, engine = _open(args)
    with engine.begin() as conn:
        if conn.execute(select(users.c.name).where(users.c.name == args.name)).first():
            raise UsageError(f"user {args.name!r} exists")
        now = time.time()
        hashed = PasswordHasher().hash(password)
        conn.execute(insert(users).values(name=args.name, role=args.role, password_hash=hashed, created=now))
        conn.execute(
            insert(audit_log).values(at=now, actor="cli", action="user_added", detail=f"{args.name} ({args.role})")
        )
    print(f"user {args.name} added ({args.role})")
    return 0


def _print_rows(rows: list[dict[str, Any]], form: str) -> None:
    if form == "json":
        print(compact_json.dumps(rows))
        return
    columns = ["device_id", "staff_id", "from", "to", "ended_by", "sessions", "logoffs"]
    if form == "csv":
        writer = csv.DictWriter(sys.stdout, columns)
        writer.writeheader()
        writer.writerows(rows)
        return
    table = [columns] + [[str(row[c]) if row[c] is not None else "-" for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
