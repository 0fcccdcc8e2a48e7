"""The exceptions queue's text filter at size: on PostgreSQL, a trigram index (pg_trgm, a
trusted extension since PostgreSQL 13) on the text the filter searches (device, key and detail,
a line each), so that a substring match reads the index instead of every row. SQLite has no
such index and keeps its scan, which is quick at the size one SQLite ledger holds.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute(
        "CREATE INDEX exceptions_text ON exceptions"
        " USING gin ((device_id || '\n' || key || '\n' || detail) gin_trgm_ops)"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("exceptions_text", "exceptions")
