"""The console for daily use: accounts that can be disabled or hold a TOTP second factor, a
note with an acknowledgement, the staff directory's names and roles (never a badge uid), and
the devices' asset records.

Revision ID: 0005
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("totp_secret", sa.String(64)))
        batch.add_column(sa.Column("totp_last", sa.BigInteger))
        batch.add_column(sa.Column("recovery_codes", sa.Text))
    with op.batch_alter_table("exceptions") as batch:
        batch.add_column(sa.Column("ack_note", sa.String(255)))
    op.create_table(
        "staff",
        sa.Column("staff_id", sa.String(255), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("role", sa.String(255), nullable=False),
        sa.Column("revoked", sa.Boolean, nullable=False),
    )
    op.create_index("staff_by_name", "staff", ["name"])
    op.create_table(
        "assets",
        sa.Column("device_id", sa.String(255), primary_key=True),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("unit", sa.String(255), nullable=False),
        sa.Column("asset_tag", sa.String(255), nullable=False),
        sa.Column("site", sa.String(255), nullable=False),
    )
    op.create_index("assets_by_tag", "assets", ["asset_tag"])


def downgrade() -> None:
    op.drop_table("assets")
    op.drop_table("staff")
    with op.batch_alter_table("exceptions") as batch:
        batch.drop_column("ack_note")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("recovery_codes")
        batch.drop_column("totp_last")
        batch.drop_column("totp_secret")
        batch.drop_column("disabled")
