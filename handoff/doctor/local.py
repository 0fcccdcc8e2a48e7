"""Checks of what lives on the cart itself: config, site secret, database, disk."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Final, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from handoff import db
from handoff.audit.keys import load_public_keys, load_signing_key
from handoff.audit.signature import fingerprint
from handoff.badge_ref import load_secret
from handoff.config import Config, load_config
from handoff.doctor.result import CheckResult, failed, passed, skipped, warned
from handoff.errors import HandoffError
from handoff.store import Store
from handoff.timefmt import rfc3339

T = TypeVar("T")

DISK_FAIL_BYTES: Final = 50 * 1024 * 1024
DISK_WARN_BYTES: Final = 500 * 1024 * 1024


def check_config(path: Path) -> tuple[CheckResult, Config | None]:
    try:
        config = load_config(path)
    except HandoffError as exc:
        return failed("config", f"{exc}; fix the file or run handoff provision --force"), None
    return passed("config", f"{path} is valid (reader {config.appliance.reader_id})"), config


def check_secret(config: Config) -> CheckResult:
    path = config.appliance.badge_secret_file
    try:
        load_secret(path)
    except HandoffError as exc:
        return failed(
            "badge secret", f"{exc}; copy the site's secret there (mode 600) with handoff provision --secret-file"
        )
    return passed("badge secret", f"{path} is present, private and long enough")


def check_commands(config: Config) -> CheckResult:
    """Who may command this cart: signed senders only, nobody, or (on a lab bench) anybody."""
    app = config.appliance
    keys: list[Ed25519PublicKey] = []
    if app.command_key_file is not None:
        try:
            keys = load_public_keys(app.command_key_file, "appliance.command_key_file")
        except HandoffError as exc:
            return failed("commands", f"{exc}; install the site's Ed25519 command public key(s) (PEM)")
    if app.allow_unsigned_commands:
        return warned(
            "commands",
            "appliance.allow_unsigned_commands = true: any client that can publish on cmd/ may end sessions "
            "or replace the badge directory; for a lab bench only, remove it on a cart in service",
        )
    if app.command_key_file is None:
        return passed("commands", "no appliance.command_key_file: every command is refused until one is set")
    fingerprints = ", ".join(fingerprint(key) for key in keys)
    return passed("commands", f"only commands signed under {app.command_key_file} are obeyed (keys {fingerprints})")


def check_audit(config: Config) -> CheckResult:
    """Whether checkpoints are signed, and with which key an auditor should expect."""
    if config.audit is None:
        return warned(
            "audit",
            "no [audit] table: nothing this cart publishes is signed, so no ledger or agent believes it "
            "and a rewritten trail cannot be told from the real one; run handoff provision to make the audit key",
        )
    try:
        key = load_signing_key(config.audit.key_file)
    except HandoffError as exc:
        return failed("audit", f"{exc}; run handoff provision to make a new audit key and give auditors its .pub")
    return passed(
        "audit",
        f"events, checkpoints and every message are signed with {config.audit.key_file} "
        f"(fingerprint {fingerprint(key)})",
    )


def check_database(config: Config) -> CheckResult:
    data_dir = config.appliance.data_dir
    try:
        conn = db.connect_checked(data_dir)
        try:
            conn.execute("CREATE TEMP TABLE doctor_probe (x)")
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
        finally:
            conn.close()
    except db.CorruptDatabase as exc:
        return failed("database", str(exc))
    except HandoffError as exc:
        return failed("data dir", f"{exc}; make {data_dir} a writable directory for the handoff user")
    except Exception as exc:
        return failed("data dir", f"database in {data_dir} cannot be written: {exc}")
    return passed("data dir", f"{data_dir} is writable and the database opens")


def _from_store(config: Config, read: Callable[[Store], T]) -> T | CheckResult:
    """`read` on the appliance's store, or a skip when the database does not open (said above)."""
    try:
        conn = db.connect_checked(config.appliance.data_dir)
    except HandoffError:
        return skipped("database records", "the database does not open (see above)")
    try:
        return read(Store(conn))
    finally:
        conn.close()


def check_seq_history(config: Config) -> CheckResult:
    """A database that lost events once is worth a biomed's look even after it recovered."""
    rewind = _from_store(config, Store.rewind)
    if isinstance(rewind, CheckResult):
        return rewind
    if rewind is None:
        return passed("seq history", "no seq was ever rewound")
    return warned(
        "seq history",
        f"{rewind.describe()} at {rfc3339(rewind.at)}: this database lost events (deleted WAL, restored or "
        "emptied file); find out why, and tell the consumers' owners that those ids are gone",
    )


def check_outbox(config: Config) -> CheckResult:
    """Whether the broker refused an event, so the outbox stopped: an ACL or a broker limit to fix."""
    blocked = _from_store(config, Store.blocked)
    if isinstance(blocked, CheckResult):
        return blocked
    if blocked is None:
        return passed("outbox", "the broker accepts events")
    return failed(
        "outbox",
        f"{blocked.describe()} since {rfc3339(blocked.since)}; later events wait behind it: let this client "
        "publish under its events/ topics in the broker's ACL (or raise the broker's limit)",
    )


def check_disk(config: Config) -> CheckResult:
    where = _existing_ancestor(config.appliance.data_dir)
    free = shutil.disk_usage(where).free
    shown = f"{free // (1024 * 1024)} MiB free on the filesystem of {where}"
    if free < DISK_FAIL_BYTES:
        return failed("disk space", f"{shown}; free space or the outbox cannot keep events")
    if free < DISK_WARN_BYTES:
        return warned("disk space", f"{shown}; free some space soon")
    return passed("disk space", shown)


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.is_dir():
            return candidate
    return Path("/")
