"""Custody intervals and sessions kept at ingest (handoff/ledger/custody.py), back-filled here
from the events already stored; the partial indexes that find an agent's receipts by the logoff
they answer and by device; and the ID token of a console login made through OpenID Connect, which
the logout hands back to the provider to end its session there too.

The back-fill walks every device's events once, as ingest would have: on a ledger of ten
million events it takes minutes, inside this migration's transaction.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from handoff.ledger import custody

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

RECEIPT = sa.text("type IN ('logoff_confirmed', 'logoff_unconfirmed')")


def upgrade() -> None:
    op.create_table(
        "custody",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("device_id", sa.String(255), nullable=False),
        sa.Column("staff_id", sa.String(255), nullable=False),
        sa.Column("start", sa.Float, nullable=False),
        sa.Column("end", sa.Float),
        sa.Column("ended_by", sa.String(64)),
        sa.Column("sessions", sa.Integer, nullable=False),
        sa.Column("logoffs", sa.String(16), nullable=False),
    )
    op.create_index("custody_device_start", "custody", ["device_id", "start"])
    op.create_index("custody_device_end", "custody", ["device_id", "end"])
    op.create_table(
        "device_sessions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("device_id", sa.String(255), nullable=False),
        sa.Column("staff_id", sa.String(255), nullable=False),
        sa.Column("session_id", sa.String(64)),
        sa.Column("start", sa.Float, nullable=False),
        sa.Column("end", sa.Float),
        sa.Column("ended_by", sa.String(64)),
        sa.Column("logoff", sa.String(16), nullable=False),
    )
    op.create_index("device_sessions_start", "device_sessions", ["device_id", "start"])
    op.create_index("device_sessions_end", "device_sessions", ["device_id", "end"])
    op.create_index("events_receipt_for", "events", ["for_id"], postgresql_where=RECEIPT, sqlite_where=RECEIPT)
    op.create_index("events_receipt_device", "events", ["device_id"], postgresql_where=RECEIPT, sqlite_where=RECEIPT)
    op.add_column("console_sessions", sa.Column("id_token", sa.Text))
    custody.rebuild(op.get_bind())


def downgrade() -> None:
    op.drop_column("console_sessions", "id_token")
    op.drop_index("events_receipt_device", "events")
    op.drop_index("events_receipt_for", "events")
    op.drop_table("device_sessions")
    op.drop_table("custody")
