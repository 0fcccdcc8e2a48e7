"""`who --at` on a PostgreSQL ledger holding ROWS events of DEVICES devices: p99 of the query the
CLI runs (handoff.ledger.queries.who), at random devices and instants. The rows are made in
the server with generate_series (checkouts and checkins in turn, one a minute per device),
not ingested, so that the run takes minutes, not hours; the indexes are the migrations' own.
The baseline, in the same run on the same table: a primary-key lookup of one event by id.
Goal: p99 under 20 ms.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import psycopg
from sqlalchemy import select

from bench.chain_cost import percentile
from handoff.ledger.database import engine_for
from handoff.ledger.queries import who
from handoff.ledger.schema import events
from handoff.testing.postgres import create_database, drop_database

FILL = """
INSERT INTO events
    (id, source, seq, type, site, device_id, staff_id, session_id, reason, at, chain_ok, payload, received)
SELECT 'e' || n,
       'urn:handoff:bench:rdr-' || (n %% %(devices)s),
       n / %(devices)s + 1,
       CASE WHEN (n / %(devices)s) %% 2 = 0 THEN 'checkout' ELSE 'checkin' END,
       'bench',
       'D-' || (n %% %(devices)s),
       's-' || ((n / %(devices)s / 2 + n %% %(devices)s) %% 3000),
       'session-' || (n / %(devices)s / 2),
       CASE WHEN (n / %(devices)s) %% 2 = 0 THEN NULL ELSE 'returned' END,
       1800000000 + (n / %(devices)s) * 60.0,
       true,
       '{}',
       1800000000
FROM generate_series(%(start)s::bigint, %(stop)s::bigint) AS n
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--devices", type=int, default=5_000)
    parser.add_argument("--queries", type=int, default=2_000)
    args = parser.parse_args()
    url = create_database()
    try:
        engine = engine_for(url)
        started = time.perf_counter()
        with psycopg.connect(url, autocommit=True) as conn:
            step = 1_000_000
            for start in range(0, args.rows, step):
                stop = min(args.rows, start + step) - 1
                conn.execute(FILL, {"start": start, "stop": stop, "devices": args.devices})
            conn.execute("ANALYZE events")
        print(f"made {args.rows:,} events of {args.devices:,} devices in {time.perf_counter() - started:.0f} s")
        span = args.rows / args.devices * 60.0
        rng = random.Random(7)
        asked: list[float] = []
        looked_up: list[float] = []
        with engine.connect() as conn:
            for _ in range(args.queries):
                device, at = f"D-{rng.randrange(args.devices)}", 1_800_000_000 + rng.uniform(0, span)
                begin = time.perf_counter()
                who(conn, device, at)
                asked.append((time.perf_counter() - begin) * 1000)
                event_id = f"e{rng.randrange(args.rows)}"
                begin = time.perf_counter()
                conn.execute(select(events.c.staff_id).where(events.c.id == event_id)).first()
                looked_up.append((time.perf_counter() - begin) * 1000)
        engine.dispose()
    finally:
        drop_database(url)
    print(
        f"who --at over {args.queries} random devices and instants: p50 {statistics.median(asked):.2f} ms, "
        f"p99 {percentile(asked, 0.99):.2f} ms (goal p99 < 20 ms)"
    )
    ratio = percentile(asked, 0.99) / percentile(looked_up, 0.99)
    print(
        f"baseline, one event by primary key: p50 {statistics.median(looked_up):.2f} ms, "
        f"p99 {percentile(looked_up, 0.99):.2f} ms; ratio p99 who / lookup {ratio:.1f}"
    )


if __name__ == "__main__":
    main()
