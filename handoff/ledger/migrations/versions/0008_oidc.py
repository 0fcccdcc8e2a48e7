"""Sign-in through OpenID Connect and TOTP enrolment in the console: an account's source (local
or oidc) and its provider subject, no password for an oidc account, and a TOTP secret pending
confirmation.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.alter_column("password_hash", existing_type=sa.Text, nullable=True)
        batch.add_column(sa.Column("totp_pending", sa.String(64)))
        batch.add_column(sa.Column("source", sa.String(16), nullable=False, server_default="local"))
        batch.add_column(sa.Column("subject", sa.String(255)))


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM users WHERE source <> 'local'"))
    with op.batch_alter_table("users") as batch:
        batch.drop_column("subject")
        batch.drop_column("source")
        batch.drop_column("totp_pending")
        batch.alter_column("password_hash", existing_type=sa.Text, nullable=False)
