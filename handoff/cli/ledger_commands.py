"""The handlers of `handoff ledger serve | who | history | exceptions | report | status | doctor |
users | directory | assets` (docs/ledger.md; the parsers are in ledger.py).

Every one of them needs the database; the web console (`serve`), the report and the broker
checks (`doctor`) are imported by their own handler only, so that a query loads neither a web
server nor a broker client.
"""

from __future__ import annotations

import argparse
import csv
import getpass
import logging
import ssl
import sys
import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from handoff import compact_json
from handoff.cli.printable import printable
from handoff.doctor.result import Status
from handoff.errors import ConfigError, HandoffError, UsageError
from handoff.ledger import accounts, health, queries, registers, second_factor
from handoff.ledger.config import LedgerConfig, load_ledger_config, resolve_ledger_config_path
from handoff.ledger.database import engine_for, write_first
from handoff.ledger.outage import why
from handoff.ledger.queries import open_exceptions
from handoff.ledger.schema import users
from handoff.ledger.spreadsheet import cell
from handoff.logs import configure_logging
from handoff.timefmt import rfc3339

log = logging.getLogger("handoff.ledger")


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


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from handoff.ledger.console.app import create_app, settle_for_serving

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
    app = create_app(config, engine)
    settle_for_serving()
    uvicorn.run(
        app,
        host=console.host,
        port=console.port,
        ssl_certfile=console.cert_file,
        ssl_keyfile=console.key_file,
        log_config=None,
        proxy_headers=False,
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


def who(args: argparse.Namespace) -> int:
    at = _instant(args.at, "--at")
    assert at is not None
    _, engine = _open(args)
    with engine.connect() as conn:
        holder = queries.who(conn, args.device, at)
    body = {
        "device_id": holder.device_id,
        "at": rfc3339(holder.at),
        "staff_id": holder.staff_id,
        "since": rfc3339(holder.since) if holder.since is not None else None,
        "logged_in": holder.logged_in,
        "session_id": holder.session_id,
        "clock_skew": holder.clock_skew,
    }
    if args.format == "json":
        print(compact_json.dumps(body))
        return 0
    device = printable(holder.device_id)
    if holder.staff_id is None:
        line = f"{device} at {body['at']}: nobody held it"
    else:
        state = "logged in" if holder.logged_in else "not logged in"
        line = f"{device} at {body['at']}: {printable(holder.staff_id)}, {state}, holding since {body['since']}"
    if holder.clock_skew:
        line += " (rests on events stamped by a clock that was off: see clock_skew in `handoff ledger exceptions`)"
    print(line)
    return 0


def history(args: argparse.Namespace) -> int:
    since, until = _instant(args.since, "--since"), _instant(args.until, "--until")
    _, engine = _open(args)
    with engine.connect() as conn:
        intervals = queries.history(conn, device_id=args.device, staff_id=args.staff, since=since, until=until)
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


def exceptions(args: argparse.Namespace) -> int:
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
            fields = (row["type"], row["device"] or "-", row["source"] or "-", row["opened"], row["detail"])
            print("\t".join(printable(field) for field in fields))
    return 0


def report(args: argparse.Namespace) -> int:
    from handoff.ledger import report, report_formats

    start, end = _instant(args.start, "--from"), _instant(args.until, "--until")
    assert start is not None and end is not None
    if end <= start:
        raise UsageError(f"--until {args.until!r} is not after --from {args.start!r}")
    config, engine = _open(args)
    with engine.connect() as conn:
        made = report.build(conn, config.ledger, start, end, time.time())
    if args.format == "json":
        sys.stdout.write(report_formats.as_json(made) + "\n")
    elif args.format == "csv":
        sys.stdout.write(report_formats.as_csv(made))
    else:
        sys.stdout.write(report_formats.html(made))
    return 0


def status(args: argparse.Namespace) -> int:
    """Exit 0 when the database answers and every ledger that reported did so lately; else 1."""
    config = load_ledger_config(resolve_ledger_config_path(args.config))
    try:
        engine = engine_for(config.ledger.database)
        with engine.connect() as conn:
            ledgers, refused = health.ledgers(conn), health.refused(conn)
            untrusted = health.untrusted_sources(conn)
    except (HandoffError, SQLAlchemyError) as exc:
        print(f"database: unreachable ({why(exc)})")
        return 1
    now = time.time()
    fresh = [ledger for ledger in ledgers if now - ledger.updated <= 3 * health.EVERY_S]
    if args.format == "json":
        body = {
            "database": "reachable",
            "ledgers": [{**asdict(ledger), "running": ledger in fresh} for ledger in ledgers],
            "refused": refused,
            "untrusted_sources": untrusted,
        }
        print(compact_json.dumps(body))
        return 0 if ledgers and len(fresh) == len(ledgers) else 1
    print("database: reachable")
    for ledger in ledgers:
        name = printable(ledger.client_id)
        if ledger not in fresh:
            print(
                f"ledger {name}: no report for {now - ledger.updated:.0f} s: not running, or cannot reach the database"
            )
            continue
        broker = "connected" if ledger.broker_connected else "NOT connected"
        print(
            f"ledger {name}: broker {broker}, lag {ledger.lag_s or 0.0:.1f} s, "
            f"{ledger.batch_rate:.1f} batches/s, {ledger.messages_per_s:.0f} messages/s"
        )
    if not ledgers:
        print("ledger: none has reported yet (is `handoff ledger run` running?)")
    shown = ", ".join(f"{printable(name)} {count}" for name, count in sorted(refused.items())) or "none"
    print(f"refused: {shown}")
    print(f"untrusted sources: {untrusted}")
    return 0 if ledgers and len(fresh) == len(ledgers) else 1


def doctor(args: argparse.Namespace) -> int:
    from handoff.ledger import doctor

    config = load_ledger_config(resolve_ledger_config_path(args.config))
    results = []
    for check in doctor.checks(config):
        results.append(check())
        print(results[-1].line(), flush=True)
    return 1 if any(result.status is Status.FAIL for result in results) else 0


def _new_password() -> str:
    password = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    problem = accounts.password_problem(password)
    if problem:
        raise UsageError(problem)
    return password


def add_user(args: argparse.Namespace) -> int:
    hashed = PasswordHasher().hash(_new_password())
    _, engine = _open(args)
    with write_first(engine) as conn:
        accounts.add(conn, time.time(), "cli", args.name, args.role, hashed)
    print(f"user {args.name} added ({args.role})")
    return 0


def list_users(args: argparse.Namespace) -> int:
    _, engine = _open(args)
    with engine.connect() as conn:
        found = accounts.listed(conn)
    rows = [
        {
            "name": a.name,
            "role": a.role,
            "status": "disabled" if a.disabled else "enabled",
            "created": rfc3339(a.created),
            "sessions": a.sessions,
            "source": a.source,
            "second_factor": a.second_factor,
        }
        for a in found
    ]
    if args.format == "json":
        print(compact_json.dumps(rows))
    else:
        for row in rows:
            print(
                f"{row['name']}\t{row['role']}\t{row['status']}\t{row['created']}\t{row['sessions']} session(s)"
                f"\t{row['source']}"
            )
    return 0


def user_role(args: argparse.Namespace) -> int:
    _, engine = _open(args)
    with write_first(engine) as conn:
        accounts.set_role(conn, time.time(), "cli", args.name, args.role)
    print(f"user {args.name} is now {args.role}")
    return 0


def disable_user(args: argparse.Namespace) -> int:
    _, engine = _open(args)
    with write_first(engine) as conn:
        accounts.set_disabled(conn, time.time(), "cli", args.name, True)
    print(f"user {args.name} disabled; their sessions are ended")
    return 0


def enable_user(args: argparse.Namespace) -> int:
    _, engine = _open(args)
    with write_first(engine) as conn:
        accounts.set_disabled(conn, time.time(), "cli", args.name, False)
    print(f"user {args.name} enabled")
    return 0


def reset_user(args: argparse.Namespace) -> int:
    hashed = PasswordHasher().hash(_new_password())
    _, engine = _open(args)
    with write_first(engine) as conn:
        accounts.reset(conn, time.time(), "cli", args.name, hashed)
    print(f"user {args.name} has a new password; their sessions are ended")
    return 0


def import_directory(args: argparse.Namespace) -> int:
    members = registers.read_directory(args.csv)
    _, engine = _open(args)
    with write_first(engine) as conn:
        registers.replace_directory(conn, time.time(), "cli", members, args.csv)
    revoked = sum(member.revoked for member in members)
    print(
        f"imported {len(members)} staff ({revoked} with every badge revoked) from {args.csv}; "
        "no badge identifier is kept"
    )
    return 0


def import_assets(args: argparse.Namespace) -> int:
    found = registers.read_assets(args.csv)
    _, engine = _open(args)
    with write_first(engine) as conn:
        registers.replace_assets(conn, time.time(), "cli", found, args.csv)
    print(f"imported {len(found)} devices from {args.csv}")
    return 0


def totp_user(args: argparse.Namespace) -> int:
    _, engine = _open(args)
    with write_first(engine) as conn:
        secret, codes = second_factor.enrol(conn, time.time(), "cli", args.name)
    print(f"user {args.name} now needs a one-time code at login. Add this to their authenticator app:")
    print(f"  {second_factor.uri(args.name, secret)}")
    print(f"  (or type the key: {secret})")
    print("Recovery codes, each good once; print them for the user now, they are not shown again:")
    for code in codes:
        print(f"  {code}")
    return 0


def _print_rows(rows: list[dict[str, Any]], form: str) -> None:
    if form == "json":
        print(compact_json.dumps(rows))
        return
    columns = ["device_id", "staff_id", "from", "to", "ended_by", "sessions", "logoffs"]
    if form == "csv":
        writer = csv.DictWriter(sys.stdout, columns)
        writer.writeheader()
        writer.writerows({key: cell(value) for key, value in row.items()} for row in rows)
        return
    table = [columns] + [[printable(str(row[c])) if row[c] is not None else "-" for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
