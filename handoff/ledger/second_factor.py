"""A second factor for local console accounts: TOTP codes (RFC 6238, through pyotp) from an
authenticator app, and ten one-time recovery codes for the day the phone is lost.

A code is accepted once: the time step it was accepted at is stored, and a code of that step or
an earlier one is refused, so a code seen over a shoulder cannot be replayed within its 30 s.
Recovery codes are stored as SHA-256 only (each is 50 random bits, used once, and behind the
password and the login limit, so a fast hash is enough) and removed as they are used.

An admin enrols an account with `handoff ledger users totp`; its owner can in the console, where
the new secret is pending until a code from it is confirmed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Final

import pyotp
from sqlalchemy import Connection, select, update

from handoff import compact_json
from handoff.ledger.accounts import audit, change, local_only
from handoff.ledger.schema import users

RECOVERY_CODES: Final = 10
ISSUER: Final = "handoff ledger"


def _digest(code: str) -> str:
    return hashlib.sha256(code.strip().lower().encode()).hexdigest()


def enrol(conn: Connection, at: float, actor: str, name: str) -> tuple[str, list[str]]:
    """A new secret and new recovery codes for `name`, replacing any, in force at once (the CLI,
    for an admin at the server): the secret, to be shown once (or as a QR code of `uri`), and the
    codes, to be printed once and kept on paper."""
    local_only(conn, name, "second factor")
    secret = pyotp.random_base32()
    return secret, _activate(conn, at, actor, name, secret, None)


def propose(conn: Connection, name: str) -> str:
    """A new secret for `name` (the console's enrolment), kept aside: no login asks for it until
    `confirm` sees a code made from it, so a person who scans it wrongly is not locked out."""
    local_only(conn, name, "second factor")
    secret = pyotp.random_base32()
    conn.execute(update(users).where(users.c.name == name).values(totp_pending=secret))
    return secret


def pending(conn: Connection, name: str) -> str | None:
    found = conn.execute(select(users.c.totp_pending).where(users.c.name == name)).scalar()
    return str(found) if found else None


def confirm(conn: Connection, at: float, name: str, code: str) -> list[str] | None:
    """Puts the secret `propose` made in force if `code` is one of its codes now; returns the new
    recovery codes (to be shown once), or None. The confirming code is spent: it cannot log in."""
    secret = pending(conn, name)
    if secret is None:
        return None
    totp = pyotp.TOTP(secret)
    now = totp.timecode(at)
    given = code.strip().replace(" ", "")
    for step in (now - 1, now, now + 1):
        if given and hmac.compare_digest(totp.generate_otp(step), given):
            return _activate(conn, at, name, name, secret, step)
    return None


def remove(conn: Connection, at: float, actor: str, name: str) -> None:
    """An admin's reset of `name`'s second factor (a lost phone): the password alone logs in
    until they enrol again."""
    change(conn, name, totp_secret=None, totp_last=None, recovery_codes=None, totp_pending=None)
    audit(conn, at, actor, "user_totp_reset", name)


def _activate(conn: Connection, at: float, actor: str, name: str, secret: str, last: int | None) -> list[str]:
    codes = [f"{secrets.token_hex(3)}-{secrets.token_hex(3)}" for _ in range(RECOVERY_CODES)]
    stored = compact_json.dumps([_digest(code) for code in codes])
    change(conn, name, totp_secret=secret, totp_last=last, recovery_codes=stored, totp_pending=None)
    audit(conn, at, actor, "user_totp_enrolled", name)
    return codes


def uri(name: str, secret: str) -> str:
    """The otpauth:// address an authenticator app reads (as a QR code or typed in)."""
    return pyotp.TOTP(secret).provisioning_uri(name=name, issuer_name=ISSUER)


def passes(conn: Connection, at: float, name: str, code: str) -> bool:
    """Whether `code` completes the login of `name` (who gave the right password): always for
    an account without a second factor; else a TOTP code of this step or a neighbour (clocks
    drift) not used before, or an unused recovery code, which is then spent."""
    row = conn.execute(
        select(users.c.totp_secret, users.c.totp_last, users.c.recovery_codes).where(users.c.name == name)
    ).first()
    if row is None or not row.totp_secret:
        return True
    given = code.strip().replace(" ", "")
    if not given:
        return False
    totp = pyotp.TOTP(row.totp_secret)
    now = totp.timecode(at)
    for step in (now - 1, now, now + 1):
        if step > (row.totp_last if row.totp_last is not None else -1) and hmac.compare_digest(
            totp.generate_otp(step), given
        ):
            conn.execute(update(users).where(users.c.name == name).values(totp_last=step))
            return True
    unused = json.loads(row.recovery_codes or "[]")
    digest = _digest(given)
    if digest in unused:
        unused.remove(digest)
        conn.execute(update(users).where(users.c.name == name).values(recovery_codes=compact_json.dumps(unused)))
        audit(conn, at, name, "recovery_code_used", f"{len(unused)} left")
        return True
    return False
