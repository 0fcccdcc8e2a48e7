"""The review of each break-glass use: an index of break-glass events alone, by person and time,
so that counting a person's uses over 30 days (at ingest, on the review page and for every use
in the evidence report) reads a handful of index entries, not all of that person's events.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    only = sa.text("type = 'break_glass'")
    op.create_index("events_break_glass", "events", ["staff_id", "at"], postgresql_where=only, sqlite_where=only)


def downgrade() -> None:
    op.drop_index("events_break_glass", "events")
