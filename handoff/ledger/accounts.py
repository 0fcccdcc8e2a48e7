"""Console accounts: made, listed, given a role, disabled, enabled and given a new password, by
`handoff ledger users` and by an admin in the console alike, each change audited with who made it.

Sessions name the account, not its role, so a role change takes effect at the next request; a
disabled account's sessions are ended here at once, and a disabled account cannot log in.

An account signed in through the hospital's OpenID provider (`source` "oidc") is made at its
first sign-in; its role comes from the provider at every sign-in and it has no password here, so
only disabling and enabling it are changes the ledger makes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sqlalchemy import Connection, delete, func, insert, select, update

from handoff.errors import UsageError
from handoff.ledger.roles import ROLES
from handoff.ledger.schema import audit_log, console_sessions, users

LOCAL: Final = "local"
OIDC: Final = "oidc"
MIN_PASSWORD: Final = 12
MAX_NAME: Final = 64


@dataclass(frozen=True)
class Account:
    name: str
    role: str
    disabled: bool
    created: float
    sessions: int
    source: str
    second_factor: bool


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
        select(
            users.c.name,
            users.c.role,
            users.c.disabled,
            users.c.created,
            func.coalesce(live.c.n, 0),
            users.c.source,
            users.c.totp_secret.is_not(None),
        )
        .outerjoin(live, live.c.user_name == users.c.name)
        .order_by(users.c.name)
    )
    return [Account(row[0], row[1], bool(row[2]), row[3], int(row[4]), row[5], bool(row[6])) for row in rows]


def source_of(conn: Connection, name: str) -> str:
    """Where the account signs in: LOCAL (password) or OIDC (the hospital's provider)."""
    found = conn.execute(select(users.c.source).where(users.c.name == name)).scalar()
    if found is None:
        raise UsageError(f"no user {name!r}")
    return str(found)


def local_only(conn: Connection, name: str, change: str) -> None:
    """Refuses `change` (a password, a role, a second factor) for an account the hospital's
    OpenID provider signs in: the provider holds those, and would undo a role at the next sign-in."""
    if source_of(conn, name) != LOCAL:
        raise UsageError(f"user {name!r} signs in through OpenID Connect: its {change} is set at the provider")


def name_problem(name: str) -> str | None:
    if not name or len(name) > MAX_NAME or not name.isprintable():
        return f"user name {name[:MAX_NAME]!r}: takes 1 to {MAX_NAME} printable characters"
    return None


def add(conn: Connection, at: float, actor: str, name: str, role: str, password_hash: str) -> None:
    problem = name_problem(name)
    if problem:
        raise UsageError(problem)
    if conn.execute(select(users.c.name).where(users.c.name == name)).first():
        raise UsageError(f"user {name!r} exists")
    conn.execute(insert(users).values(name=name, role=role, password_hash=password_hash, created=at))
    audit(conn, at, actor, "user_added", f"{name} ({role})")


def set_role(conn: Connection, at: float, actor: str, name: str, role: str) -> None:
    if role not in ROLES:
        raise UsageError(f"role {role!r}: must be one of {', '.join(ROLES)}")
    local_only(conn, name, "role")
    change(conn, name, role=role)
    audit(conn, at, actor, "user_role", f"{name} ({role})")


def set_disabled(conn: Connection, at: float, actor: str, name: str, disabled: bool) -> None:
    change(conn, name, disabled=disabled)
    if disabled:
        conn.execute(delete(console_sessions).where(console_sessions.c.user_name == name))
    audit(conn, at, actor, "user_disabled" if disabled else "user_enabled", name)


def reset(conn: Connection, at: float, actor: str, name: str, password_hash: str) -> None:
    """A new password; every session of the account ends (whoever knew the old one is out)."""
    local_only(conn, name, "password")
    change(conn, name, password_hash=password_hash)
    conn.execute(delete(console_sessions).where(console_sessions.c.user_name == name))
    audit(conn, at, actor, "user_password_reset", name)


def change(conn: Connection, name: str, **values: object) -> None:
    """Set `values` on the account `name`; no such account is a usage error."""
    if not conn.execute(update(users).where(users.c.name == name).values(**values)).rowcount:
        raise UsageError(f"no user {name!r}")
