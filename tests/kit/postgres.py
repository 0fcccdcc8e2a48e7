"""The kit's postgres: a PostgreSQL database per test.

It lives in `handoff.testing.postgres`, which the demo and the benches share.
"""

from handoff.testing.postgres import LOCAL, create_database, drop_database, server

__all__ = ["LOCAL", "create_database", "drop_database", "server"]
