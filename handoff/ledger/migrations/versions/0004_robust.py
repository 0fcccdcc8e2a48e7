"""Events flagged for a skewed clock, messages set aside, and each ledger's health.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("clock_skew_s", sa.Float))
    op.create_table(
        "set_aside",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("received", sa.Float, nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("topic", sa.LargeBinary, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "ledger_health",
        sa.Column("client_id", sa.String(255), primary_key=True),
        sa.Column("updated", sa.Float, nullable=False),
        sa.Column("broker_connected", sa.Boolean, nullable=False),
        sa.Column("lag_s", sa.Float),
        sa.Column("batch_rate", sa.Float, nullable=False),
        sa.Column("messages_per_s", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ledger_health")
    op.drop_table("set_aside")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("clock_skew_s")
