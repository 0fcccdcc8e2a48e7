"""The ledger's tables, in SQLAlchemy Core: one schema for SQLite (one box) and PostgreSQL (a fleet).

Times are epoch seconds (floats), compared the same way by both engines; the CLI and the
console read and write RFC 3339. The migrations (`handoff/ledger/migrations`, Alembic) create
exactly these tables; a test holds the two to each other.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    false,
    literal_column,
    text,
)

metadata = MetaData()

RECEIPT: Final = text("type IN ('logoff_confirmed', 'logoff_unconfirmed')")
"""An agent's receipt for a forced logoff or a checkin; written out, not bound, so that both
engines match it to the partial indexes below."""

POSTGRESQL_ONLY: Final = "postgresql_only"
"""Marks, in an index's `info`, one the migrations make on PostgreSQL alone: the trigram index
of the exceptions' text filter (pg_trgm has no SQLite counterpart), an index on an expression
that Alembic cannot compare with the database's own."""

events = Table(
    "events",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("source", String(255), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("type", String(32), nullable=False),
    Column("site", String(255), nullable=False),
    Column("device_id", String(255), nullable=False),
    Column("staff_id", String(255)),
    Column("session_id", String(64)),
    Column("reason", String(64)),
    Column("for_id", String(64)),
    Column("at", Float, nullable=False),
    Column("chain_ok", Boolean),
    Column("payload", Text, nullable=False),
    Column("received", Float, nullable=False),
    Column("clock_skew_s", Float),
    Index("events_device_at", "device_id", "at"),
    Index("events_staff_at", "staff_id", "at"),
    Index("events_source_seq", "source", "seq"),
    Index(
        "events_break_glass",
        "staff_id",
        "at",
        postgresql_where=text("type = 'break_glass'"),
        sqlite_where=text("type = 'break_glass'"),
    ),
    Index("events_receipt_for", "for_id", postgresql_where=RECEIPT, sqlite_where=RECEIPT),
    Index("events_receipt_device", "device_id", postgresql_where=RECEIPT, sqlite_where=RECEIPT),
)
"""Every event once, keyed by its CloudEvents id, with its raw payload; the columns beside it
are read out of the payload for queries. `clock_skew_s` is set when the event's `time` ran
backwards from its predecessor's, or was that far from when the ledger received it: answers
that rest on it say so."""

sources = Table(
    "sources",
    metadata,
    Column("source", String(255), primary_key=True),
    Column("site", String(255), nullable=False),
    Column("device_id", String(255), nullable=False),
    Column("first_seq", BigInteger, nullable=False),
    Column("contiguous_upto", BigInteger, nullable=False),
    Column("max_seq", BigInteger, nullable=False),
)
"""Per appliance: every seq from `first_seq` to `contiguous_upto` is here; above it, holes."""

devices = Table(
    "devices",
    metadata,
    Column("device_id", String(255), primary_key=True),
    Column("site", String(255), nullable=False),
    Column("state", String(16)),
    Column("staff_id", String(255)),
    Column("session_id", String(64)),
    Column("since", Float),
    Column("seq", BigInteger),
    Column("status", String(16)),
    Column("last_heard", Float, nullable=False),
    Column("latest_event", Float),
    Index("devices_staff", "staff_id"),
)
"""Each device as its trusted events say now (holder, state, since: the events are the truth,
its retained `state` is not), its retained `status`, and when anything trusted was last heard."""

custody = Table(
    "custody",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", String(255), nullable=False),
    Column("staff_id", String(255), nullable=False),
    Column("start", Float, nullable=False),
    Column("end", Float),
    Column("ended_by", String(64)),
    Column("sessions", Integer, nullable=False),
    Column("logoffs", String(16), nullable=False),
    Index("custody_device_start", "device_id", "start"),
    Index("custody_device_end", "device_id", "end"),
)
"""Each device's custody intervals as the walk of all its stored events finds them
(`queries.Walk`), kept as events are stored (custody.py): a device page reads a page of them
and its timeline's bars, not every event of its window. `logoffs` is `unanswered` where the
walk says `pending` or `n/a` depending on whether the device has an agent at all, which is
decided when it is read, so that a device's first receipt does not rewrite its whole past."""

device_sessions = Table(
    "device_sessions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", String(255), nullable=False),
    Column("staff_id", String(255), nullable=False),
    Column("session_id", String(64)),
    Column("start", Float, nullable=False),
    Column("end", Float),
    Column("ended_by", String(64)),
    Column("logoff", String(16), nullable=False),
    Index("device_sessions_start", "device_id", "start"),
    Index("device_sessions_end", "device_id", "end"),
)
"""Each device's sessions, kept with `custody` from the same walk; `logoff` as `custody.logoffs`."""

STILL_OPEN: Final = text("closed IS NULL")
"""The queue's open exceptions: the partial indexes that page through them hold only those."""

exceptions = Table(
    "exceptions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("type", String(32), nullable=False),
    Column("device_id", String(255), nullable=False),
    Column("source", String(255), nullable=False),
    Column("key", String(255), nullable=False),
    Column("opened", Float, nullable=False),
    Column("closed", Float),
    Column("detail", Text, nullable=False),
    Column("acked_by", String(255)),
    Column("acked_at", Float),
    Column("ack_note", String(255)),
    Index("exceptions_open", "type", "key", "closed"),
    Index("exceptions_by_device", "device_id", "closed"),
    Index("exceptions_open_queue", "opened", "id", postgresql_where=STILL_OPEN, sqlite_where=STILL_OPEN),
    Index("exceptions_open_by_type", "type", "opened", "id", postgresql_where=STILL_OPEN, sqlite_where=STILL_OPEN),
    Index("exceptions_closed_queue", "closed", "id"),
)

EXCEPTION_TEXT: Final = (
    exceptions.c.device_id + literal_column("'\n'", String) + exceptions.c.key + literal_column("'\n'", String)
    + exceptions.c.detail
)  # fmt: skip
"""What the exceptions' text filter searches: device, key and detail as one text, a line each
(so that a match never spans two of them), on PostgreSQL served by one trigram index (pg_trgm);
one index whose statistics the planner reads, where three, one a column, lost to a scan."""
Index(
    "exceptions_text",
    EXCEPTION_TEXT.label("searched"),
    postgresql_using="gin",
    postgresql_ops={"searched": "gin_trgm_ops"},
    info={POSTGRESQL_ONLY: True},
)

checkpoints = Table(
    "checkpoints",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("source", String(255), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("chain", String(64), nullable=False),
    Column("signature_ok", Boolean, nullable=False),
    Column("payload", Text, nullable=False),
    Column("received", Float, nullable=False),
)

receipts = Table(
    "receipts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("for_id", String(64), nullable=False),
    Column("device_id", String(255), nullable=False),
    Column("result", String(16), nullable=False),
    Column("payload", Text, nullable=False),
    Column("received", Float, nullable=False),
)

counters = Table(
    "counters",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False),
)
"""Messages refused (not JSON, not a CloudEvent, a topic that does not match its subject...),
by reason: counted, never stored as truth."""

users = Table(
    "users",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("password_hash", Text),
    Column("created", Float, nullable=False),
    Column("disabled", Boolean, nullable=False, server_default=false()),
    Column("totp_secret", String(64)),
    Column("totp_last", BigInteger),
    Column("recovery_codes", Text),
    Column("totp_pending", String(64)),
    Column("source", String(16), nullable=False, server_default="local"),
    Column("subject", String(255)),
)
"""Console accounts. A local one has an argon2id password hash; optionally a TOTP secret (RFC
6238), the last time step a code was accepted at (a code is good once), the SHA-256 of each
unused recovery code (a JSON list), and a secret being enrolled that no login accepts until a
code from it is confirmed. An account of `source` "oidc" has no password: the hospital's
OpenID provider signs it in, and `subject` is the provider's unchanging id (`sub`) for it."""

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("actor", String(255), nullable=False),
    Column("action", String(64), nullable=False),
    Column("detail", Text, nullable=False),
)
"""Console accounts made, logins, failures and acknowledgements: who did what, when."""

console_sessions = Table(
    "console_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_name", String(255), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("id_token", Text),
)
"""Console logins, kept in the database so that a logout, an expiry or a restart of the
console ends them for certain; only a SHA-256 of the session token is stored, so a copy of the
database lets nobody in."""

enrolments = Table(
    "enrolments",
    metadata,
    Column("device_id", String(255), primary_key=True),
    Column("public_key", String(64), nullable=False),
    Column("agent_keys", Text, nullable=False),
    Column("enrolled", Float, nullable=False),
    Column("enrolled_by", String(255), nullable=False),
)
"""The key each device's appliance signs with (32 raw bytes, base64) and its agents' keys (a JSON
list of the same): the ledger believes a device's messages only under these."""

untrusted = Table(
    "untrusted",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(255), nullable=False),
    Column("device_id", String(255), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("topic", Text, nullable=False),
    Column("payload", Text, nullable=False),
    Column("public_key", String(64)),
    Column("received", Float, nullable=False),
    Index("untrusted_source", "source"),
    Index("untrusted_device", "device_id"),
)
"""Messages not signed by their device's enrolled key, kept apart (never read as truth) so that
enrolling the device later can bring in those its key signed. Bounded per source and in all;
`public_key` is the key a `status` presents, which the console shows for enrolment."""

set_aside = Table(
    "set_aside",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("received", Float, nullable=False),
    Column("reason", String(64), nullable=False),
    Column("topic", LargeBinary, nullable=False),
    Column("payload", LargeBinary, nullable=False),
)
"""Messages the database refused although they passed every check, kept raw (as bytes: they may
hold what a text column cannot) for whoever investigates; the oldest go beyond a bound."""

ledger_health = Table(
    "ledger_health",
    metadata,
    Column("client_id", String(255), primary_key=True),
    Column("updated", Float, nullable=False),
    Column("broker_connected", Boolean, nullable=False),
    Column("lag_s", Float),
    Column("batch_rate", Float, nullable=False),
    Column("messages_per_s", Float, nullable=False),
)
"""Each running ledger's own view, written every few seconds, for `handoff ledger status`."""

staff = Table(
    "staff",
    metadata,
    Column("staff_id", String(255), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("role", String(255), nullable=False),
    Column("revoked", Boolean, nullable=False),
    Index("staff_by_name", "name"),
)
"""Names and roles from the badge directory CSV the appliances use (`ledger directory import`),
so pages show people, not ids. Never a badge uid: the ledger has no use for one."""

assets = Table(
    "assets",
    metadata,
    Column("device_id", String(255), primary_key=True),
    Column("model", String(255), nullable=False),
    Column("unit", String(255), nullable=False),
    Column("asset_tag", String(255), nullable=False),
    Column("site", String(255), nullable=False),
    Index("assets_by_tag", "asset_tag"),
)
"""What each device is and where it belongs (`ledger assets import`), from the hospital's asset
register: pages show the model, unit and asset tag next to the device id."""

responses = Table(
    "responses",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("exception_id", Integer, nullable=False),
    Column("command", String(32), nullable=False),
    Column("site", String(255), nullable=False),
    Column("device_id", String(255), nullable=False),
    Column("session_id", String(64)),
    Column("queued", Float, nullable=False),
    Column("sent", Float),
    Column("outcome", String(255)),
    Column("result", Text),
    Column("answered", Float),
    Index("responses_unsent", "sent"),
    Index("responses_exception", "exception_id"),
)
"""The ledger's own commands (an anomaly's automated `force_logoff`), keyed by the command's id:
written in the transaction that opens the exception, published after its commit, and kept until
the broker has acknowledged it (`sent`), so that neither a crash nor a broker outage loses one.
`outcome` says why one was not sent (its session had already ended); `result` is the appliance's
signed `cmd_result`, as it came."""
