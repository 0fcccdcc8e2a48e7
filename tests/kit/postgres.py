"""The kit's postgres: a PostgreSQL database per test, and a server of a test's own to stop and start.

It lives in `handoff.testing.postgres`, which the demo and the benches share.
"""

from handoff.testing.postgres import LOCAL, Cluster, create_database, drop_database, server

__all__ = ["LOCAL", "Cluster", "create_database", "drop_database", "server"]
