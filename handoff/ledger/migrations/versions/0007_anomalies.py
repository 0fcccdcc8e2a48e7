"""Anomalies: the ledger's own commands (an automated `force_logoff`) with the appliance's answer,
and an index to find a staff id's devices in one lookup.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("devices_staff", "devices", ["staff_id"])
    op.create_table(
        "responses",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("exception_id", sa.Integer, nullable=False),
        sa.Column("command", sa.String(32), nullable=False),
        sa.Column("site", sa.String(255), nullable=False),
        sa.Column("device_id", sa.String(255), nullable=False),
        sa.Column("session_id", sa.String(64)),
        sa.Column("queued", sa.Float, nullable=False),
        sa.Column("sent", sa.Float),
        sa.Column("outcome", sa.String(255)),
        sa.Column("result", sa.Text),
        sa.Column("answered", sa.Float),
    )
    op.create_index("responses_unsent", "responses", ["sent"])
    op.create_index("responses_exception", "responses", ["exception_id"])


def downgrade() -> None:
    op.drop_table("responses")
    op.drop_index("devices_staff", "devices")
