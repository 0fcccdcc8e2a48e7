"""The console's tables at size: the exceptions queue read a page at a time in its own order
(open ones oldest first, then closed ones newest first, by kind or not) and a device's
exceptions found without reading all of them.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

STILL_OPEN = sa.text("closed IS NULL")


def upgrade() -> None:
    op.create_index("exceptions_by_device", "exceptions", ["device_id", "closed"])
    op.create_index(
        "exceptions_open_queue", "exceptions", ["opened", "id"], postgresql_where=STILL_OPEN, sqlite_where=STILL_OPEN
    )
    op.create_index(
        "exceptions_open_by_type",
        "exceptions",
        ["type", "opened", "id"],
        postgresql_where=STILL_OPEN,
        sqlite_where=STILL_OPEN,
    )
    op.create_index("exceptions_closed_queue", "exceptions", ["closed", "id"])


def downgrade() -> None:
    for name in ("exceptions_closed_queue", "exceptions_open_by_type", "exceptions_open_queue", "exceptions_by_device"):
        op.drop_index(name, "exceptions")
