"""Enrolled keys, messages kept apart, the time of the newest event behind a device's holder,
and logoff_unconfirmed keyed by device and event.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "enrolments",
        sa.Column("device_id", sa.String(255), primary_key=True),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("agent_keys", sa.Text, nullable=False),
        sa.Column("enrolled", sa.Float, nullable=False),
        sa.Column("enrolled_by", sa.String(255), nullable=False),
    )
    op.create_table(
        "untrusted",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("device_id", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("public_key", sa.String(64)),
        sa.Column("received", sa.Float, nullable=False),
    )
    op.create_index("untrusted_source", "untrusted", ["source"])
    op.create_index("untrusted_device", "untrusted", ["device_id"])
    with op.batch_alter_table("devices") as table:
        table.add_column(sa.Column("latest_event", sa.Float))
    op.execute(
        "UPDATE exceptions SET key = device_id || ':' || key WHERE type = 'logoff_unconfirmed' AND closed IS NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("devices") as table:
        table.drop_column("latest_event")
    op.drop_index("untrusted_device", "untrusted")
    op.drop_index("untrusted_source", "untrusted")
    op.drop_table("untrusted")
    op.drop_table("enrolments")
