"""The ledger's first schema: events, sources, devices, exceptions, checkpoints, receipts,
counters, console users and their audit log.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("site", sa.String(255), nullable=False),
        sa.Column("device_id", sa.String(255), nullable=False),
        sa.Column("staff_id", sa.String(255)),
        sa.Column("session_id", sa.String(64)),
        sa.Column("reason", sa.String(64)),
        sa.Column("for_id", sa.String(64)),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("chain_ok", sa.Boolean),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("received", sa.Float, nullable=False),
    )
    op.create_index("events_device_at", "events", ["device_id", "at"])
    op.create_index("events_staff_at", "events", ["staff_id", "at"])
    op.create_index("events_source_seq", "events", ["source", "seq"])
    op.create_table(
        "sources",
        sa.Column("source", sa.String(255), primary_key=True),
        sa.Column("site", sa.String(255), nullable=False),
        sa.Column("device_id", sa.String(255), nullable=False),
        sa.Column("first_seq", sa.BigInteger, nullable=False),
        sa.Column("contiguous_upto", sa.BigInteger, nullable=False),
        sa.Column("max_seq", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "devices",
        sa.Column("device_id", sa.String(255), primary_key=True),
        sa.Column("site", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16)),
        sa.Column("staff_id", sa.String(255)),
        sa.Column("session_id", sa.String(64)),
        sa.Column("since", sa.Float),
        sa.Column("seq", sa.BigInteger),
        sa.Column("status", sa.String(16)),
        sa.Column("last_heard", sa.Float, nullable=False),
    )
    op.create_table(
        "exceptions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("device_id", sa.String(255), nullable=False),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("opened", sa.Float, nullable=False),
        sa.Column("closed", sa.Float),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("acked_by", sa.String(255)),
        sa.Column("acked_at", sa.Float),
    )
    op.create_index("exceptions_open", "exceptions", ["type", "key", "closed"])
    op.create_table(
        "checkpoints",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("chain", sa.String(64), nullable=False),
        sa.Column("signature_ok", sa.Boolean, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("received", sa.Float, nullable=False),
    )
    op.create_table(
        "receipts",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("for_id", sa.String(64), nullable=False),
        sa.Column("device_id", sa.String(255), nullable=False),
        sa.Column("result", sa.String(16), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("received", sa.Float, nullable=False),
    )
    op.create_table(
        "counters",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "users",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )
