"""Accounts of people the hospital's OpenID provider signs in: which console role their claims
give them, and the ledger's record of them, made at the first sign-in and audited.

The role is read from the provider at every sign-in, so a person moved out of the group loses the
console at the next one; disabling the account in the ledger blocks it whatever the provider says.
The account is tied to the provider's `sub`, which never changes, not to the name shown (which can:
a renamed user keeps their account only if the provider still says the same `sub`), and a local
account's name is never taken over by a sign-in that presents the same name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from sqlalchemy import Connection, insert, select, update

from handoff.ledger.accounts import OIDC, audit, name_problem
from handoff.ledger.roles import ROLES
from handoff.ledger.schema import users

NAME_CLAIMS: Final = ("preferred_username", "email", "sub")
"""The claims tried, in order, for the account's name in the console and its audit trail."""


def role_for(claims: Mapping[str, Any], claim: str, roles: Mapping[str, str]) -> str | None:
    """The highest console role any value of `claim` maps to, or None. The claim may be one value
    or a list of them (Entra ID, Okta and Keycloak send groups and roles as a list)."""
    given = claims.get(claim)
    values = given if isinstance(given, list) else [given]
    mapped = {roles[value] for value in values if isinstance(value, str) and value in roles}
    return max(mapped, key=ROLES.index) if mapped else None


def name_for(claims: Mapping[str, Any]) -> str | None:
    for claim in NAME_CLAIMS:
        value = claims.get(claim)
        if isinstance(value, str) and value:
            return value
    return None


def admit(conn: Connection, at: float, address: str, name: str, subject: str, role: str) -> str | None:
    """Records a sign-in the provider vouched for: makes the account at the first one, sets its
    role from the provider's claims. Returns why the sign-in is refused, or None."""
    problem = name_problem(name)
    if problem:
        return problem
    row = conn.execute(
        select(users.c.source, users.c.subject, users.c.role, users.c.disabled).where(users.c.name == name)
    ).first()
    if row is None:
        conn.execute(insert(users).values(name=name, role=role, source=OIDC, subject=subject, created=at))
        audit(conn, at, "oidc", "user_added", f"{name} ({role}, OpenID Connect)")
    elif row.source != OIDC:
        return f"a local console account is named {name!r}; the provider cannot sign in as it"
    elif row.subject != subject:
        return f"the console account {name!r} belongs to another person at the provider"
    elif row.disabled:
        return f"the console account {name!r} is disabled in the ledger"
    elif row.role != role:
        conn.execute(update(users).where(users.c.name == name).values(role=role))
        audit(conn, at, "oidc", "user_role", f"{name} ({role}, from the provider)")
    audit(conn, at, name, "login", f"{address} (OpenID Connect)")
    return None
