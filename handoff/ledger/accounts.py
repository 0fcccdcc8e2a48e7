"""Console accounts: made, listed, given a role, disabled, enabled and given a new password, by
`handoff ledger users` and by an admin in the console alike, each change audited with who made it.

Sessions name the account, not its role, so a role change takes effect at the next request; a
disabled account's sessions are ended here at once, and a disabled account cannot log in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sqlalchemy import Connection, delete, func, insert, select, update

from handoff.errors import UsageError
from handoff.ledger.schema import audit_log, console_sessions, users

ROLES: Final = ("viewer", "admin")
MIN_PASSWORD: Final = 12
MAX_NAME: Final = 64


@dataclass(frozen=True)
class Account:
    name: str
    role: str
    disabled: bool
    created: float
    sessions: int


def audit(conn: Connection, at: float, actor: str, action: str, detail: str) -> None:
    """One line of the console's audit trail (`audit_log`)."""
    conn.execute(insert(audit_log).values(at=at, actor=actor, action=action, detail=detail))


def password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD:
        return f"the password must have at least {MIN_PASSWORD} characters"
    return None


def listed(conn: Connection) -> list[Account]:
    live = (
        select(console_sessions.c.user_name, func.count().label("n")).group_by(console_sessions.c.user_name).subquery()
    )
    rows = conn.execute(
        select(users.c.name, users.c.role, users.c.disabled, users.c.created, func.coalesce(live.c.n, 0))
        .outerjoin(live, live.c.user_name == users.c.name)
        .order_by(users.c.name)
    )
    return [Account(row[0], row[1], bool(row[2]), row[3], int(row[4])) for row in rows]


def add(conn: Connection, at: float, actor: str, name: str, role: str, password_hash: str) -> None:
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise UsageError(f"user name {name[:MAX_NAME]!r}: takes 1 to {MAX_NAME} printable characters")
    if conn.execute(select(users.c.name).where(users.c.name == name)).first():
        raise UsageError(f"user {name!r} exists")
    conn.execute(insert(users).values(name=name, role=role, password_hash=password_hash, created=at))
    audit(conn, at, actor, "user_added", f"{name} ({role})")


def set_role(conn: Connection, at: float, actor: str, name: str, role: str) -> None:
    if role not in ROLES:
        raise UsageError(f"role {role!r}: must be one of {', '.join(ROLES)}")
    _change(conn, name, role=role)
    audit(conn, at, actor, "user_role", f"{name} ({role})")


def set_disabled(conn: Connection, at: float, actor: str, name: str, disabled: bool) -> None:
    _change(conn, name, disabled=disabled)
    if disabled:
        conn.execute(delete(console_sessions).where(console_sessions.c.user_name == name))
    audit(conn, at, actor, "user_disabled" if disabled else "user_enabled", name)


def reset(conn: Connection, at: float, actor: str, name: str, password_hash: str) -> None:
    """A new password; every session of the account ends (whoever knew the old one is out)."""
    _change(conn, name, password_hash=password_hash)
    conn.execute(delete(console_sessions).where(console_sessions.c.user_name == name))
    audit(conn, at, actor, "user_password_reset", name)


def _change(conn: Connection, name: str, **values: object) -> None:
    if not conn.execute(update(users).where(users.c.name == name).values(**values)).rowcount:
        raise UsageError(f"no user {name!r}")
