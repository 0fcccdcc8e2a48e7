"""Who may use the console: passwords, server-side sessions, and the limit on failed logins.

Sessions live in the database rather than in a signed cookie so that logging out, an idle
timeout and the absolute lifetime end a session for certain, on every console process at once;
the cookie carries a random token of 256 bits, and the database only its SHA-256.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, delete, insert, or_, select, update

from handoff.ledger.accounts import LOCAL
from handoff.ledger.schema import console_sessions, users

IDLE_S: Final = 15 * 60
LIFETIME_S: Final = 12 * 3600
TOKEN_BYTES: Final = 32


@dataclass(frozen=True)
class Login:
    """A live session: whose, with which role now, and the token its forms must carry."""

    user: str
    role: str
    csrf: str

    @property
    def admin(self) -> bool:
        return self.role == "admin"


def same(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a submitted token."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def _hashed(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Verdict:
    """What a password check found: the account's role if the password is right, and the
    account's new hash if its stored one was made with weaker parameters than today's."""

    role: str | None
    rehashed: str | None = None


class Accounts:
    """Password checks against the `users` table (argon2id, as `handoff ledger users add` hashes).

    The check is split around argon2 (a fifth of a second of work): the stored hash is read in
    one short transaction, verified outside any, and the outcome written in another, so no
    transaction stays open, holding SQLite's write lock, while a password is hashed."""

    def __init__(self) -> None:
        self._hasher = PasswordHasher()
        self._decoy = self._hasher.hash(new_token())

    def stored(self, conn: Connection, name: str) -> tuple[str, str] | None:
        """The account's password hash and role, if there is such a local account and it is
        enabled (one the OpenID provider signs in has no password here)."""
        row = conn.execute(
            select(users.c.password_hash, users.c.role).where(
                users.c.name == name,
                users.c.disabled.is_(False),
                users.c.source == LOCAL,
                users.c.password_hash.is_not(None),
            )
        ).first()
        return (str(row.password_hash), str(row.role)) if row else None

    def verify(self, stored: tuple[str, str] | None, password: str) -> Verdict:
        """An unknown name costs the same argon2 work as a known one, so timing does not tell
        which names exist."""
        try:
            self._hasher.verify(stored[0] if stored else self._decoy, password)
        except (VerificationError, InvalidHashError):
            return Verdict(None)
        if stored is None:
            return Verdict(None)
        rehashed = self._hasher.hash(password) if self._hasher.check_needs_rehash(stored[0]) else None
        return Verdict(stored[1], rehashed)

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    @staticmethod
    def rehash(conn: Connection, name: str, password_hash: str) -> None:
        conn.execute(update(users).where(users.c.name == name).values(password_hash=password_hash))


class Sessions:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock

    def begin(self, conn: Connection, user: str, replacing: str | None, id_token: str | None = None) -> tuple[str, str]:
        """A new session for `user` (a new token at every login, whatever the browser sent):
        its token and CSRF token. Ends the session it replaces and any that have expired.
        `id_token`: the provider's, for a login through OpenID Connect (its logout needs it)."""
        now = self._clock()
        stale = or_(console_sessions.c.last_seen < now - IDLE_S, console_sessions.c.created < now - LIFETIME_S)
        conn.execute(delete(console_sessions).where(stale))
        if replacing:
            self.end(conn, replacing)
        token, csrf = new_token(), new_token()
        conn.execute(
            insert(console_sessions).values(
                token_hash=_hashed(token), user_name=user, csrf=csrf, created=now, last_seen=now, id_token=id_token
            )
        )
        return token, csrf

    def find(self, conn: Connection, token: str, *, touch: bool) -> Login | None:
        """The live session of `token`, or None once it is idle for IDLE_S or older than
        LIFETIME_S (it is deleted then). `touch` counts this request as the user's activity:
        the fleet page's own refresh must not keep an abandoned login alive."""
        now, key = self._clock(), _hashed(token)
        row = conn.execute(
            select(console_sessions, users.c.role, users.c.disabled)
            .join(users, users.c.name == console_sessions.c.user_name)
            .where(console_sessions.c.token_hash == key)
        ).first()
        if row is None:
            return None
        if row.disabled:
            conn.execute(delete(console_sessions).where(console_sessions.c.token_hash == key))
            return None
        if now - row.last_seen > IDLE_S or now - row.created > LIFETIME_S:
            conn.execute(delete(console_sessions).where(console_sessions.c.token_hash == key))
            return None
        if touch:
            conn.execute(update(console_sessions).where(console_sessions.c.token_hash == key).values(last_seen=now))
        return Login(row.user_name, row.role, row.csrf)

    def end(self, conn: Connection, token: str) -> str | None:
        """Ends the session; the provider's ID token it was begun with, if any."""
        key = _hashed(token)
        id_token = conn.execute(
            select(console_sessions.c.id_token).where(console_sessions.c.token_hash == key)
        ).scalar()
        conn.execute(delete(console_sessions).where(console_sessions.c.token_hash == key))
        return id_token


class Throttle:
    """Failed logins counted per account name and per client address over a sliding window;
    past the limit, logins from that name or address wait, even with the right password.

    Kept in the console process's memory: a restart forgets it, and several console processes
    each count their own (docs/console.md says so). Keys are bounded, oldest dropped first, so a
    spray of invented names cannot grow it without end.
    """

    MAX_KEYS: Final = 10_000

    def __init__(
        self, clock: Callable[[], float], per_name: int = 5, per_address: int = 20, window_s: float = 900.0
    ) -> None:
        self._clock = clock
        self._limits = {"name": per_name, "address": per_address}
        self._window_s = window_s
        self._failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()

    def wait_s(self, name: str, address: str) -> float:
        """Seconds until a login for `name` from `address` may be tried; 0 if it may now."""
        now = self._clock()
        waits = [0.0]
        for kind, key in (("name", name), ("address", address)):
            times = self._recent((kind, key), now)
            if len(times) >= self._limits[kind]:
                waits.append(times[-self._limits[kind]] + self._window_s - now)
        return max(waits)

    def failed(self, name: str, address: str) -> None:
        now = self._clock()
        for key in (("name", name), ("address", address)):
            self._failures.setdefault(key, deque()).append(now)
            self._failures.move_to_end(key)
        while len(self._failures) > self.MAX_KEYS:
            self._failures.popitem(last=False)

    def succeeded(self, name: str) -> None:
        self._failures.pop(("name", name), None)

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._failures.get(key, deque())
        while times and times[0] <= now - self._window_s:
            times.popleft()
        return times
