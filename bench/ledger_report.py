"""`handoff ledger report` over a quarter of a large fleet on PostgreSQL: the time report.build
takes (every figure of the evidence report, as the CLI and the console compute it) at each of
the sizes asked, to show how it scales. The rows are made in the server with generate_series,
not ingested, then vacuumed as autovacuum would (a first scan after a bulk load otherwise
pays for setting every row's hint bits), so a fill takes minutes: per device, in turn, a checkout, a forced logoff (idle
timeout or handoff), its agent's confirmation a few seconds later, and a checkin, with a
break-glass use now and then in place of the checkin; the indexes are the migrations' own.
The baseline, in the same run on the same table: `SELECT count(*)` of the window's events.
Goal (issue 24): 10,000,000 events of 5,000 devices in under 30 s.
"""

from __future__ import annotations

import argparse
import time

import psycopg
from sqlalchemy import func, select

from handoff.ledger.config import LedgerSettings
from handoff.ledger.database import engine_for
from handoff.ledger.report import build
from handoff.ledger.schema import events
from handoff.testing.postgres import create_database, drop_database

QUARTER_S = 91 * 86400.0
START = 1_800_000_000.0
FILL = """
INSERT INTO events
    (id, source, seq, type, site, device_id, staff_id, session_id, reason, for_id, at, chain_ok, payload, received)
SELECT 'e' || n,
       'urn:handoff:bench:rdr-' || (n %% %(devices)s),
       n / %(devices)s + 1,
       CASE (n / %(devices)s) %% 4
            WHEN 0 THEN 'checkout'
            WHEN 1 THEN 'forced_logoff'
            WHEN 2 THEN 'logoff_confirmed'
            ELSE CASE WHEN (n / %(devices)s) %% 1000 = 3 THEN 'break_glass' ELSE 'checkin' END END,
       'bench',
       'D-' || (n %% %(devices)s),
       's-' || ((n / %(devices)s / 4 + n %% %(devices)s) %% 3000),
       'session-' || (n / %(devices)s / 4),
       CASE (n / %(devices)s) %% 4
            WHEN 1 THEN CASE WHEN (n / %(devices)s) %% 8 = 1 THEN 'idle_timeout' ELSE 'handoff' END
            WHEN 3 THEN 'returned' END,
       CASE WHEN (n / %(devices)s) %% 4 = 2 THEN 'e' || (n - %(devices)s) END,
       %(start)s + CASE WHEN (n / %(devices)s) %% 4 = 2
                        THEN (n / %(devices)s - 1) * %(step)s + (n %% 97) / 7.0
                        ELSE (n / %(devices)s) * %(step)s END,
       true,
       '{}',
       %(start)s
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS n
"""


def measure(rows: int, devices: int) -> tuple[float, float, float]:
    """(fill seconds, report seconds, baseline seconds) for `rows` events of `devices` devices."""
    url = create_database()
    try:
        engine = engine_for(url)
        started = time.perf_counter()
        with psycopg.connect(url, autocommit=True) as conn:
            chunk = 1_000_000
            step = QUARTER_S / (rows / devices)
            for first in range(0, rows, chunk):
                last = min(rows, first + chunk) - 1
                values = {"first": first, "last": last, "devices": devices, "start": START, "step": step}
                conn.execute(FILL, values)
            conn.execute("VACUUM ANALYZE events")
        filled = time.perf_counter() - started
        end = START + QUARTER_S + 86400
        with engine.connect() as conn:
            begin = time.perf_counter()
            counted = conn.execute(
                select(func.count()).select_from(events).where(events.c.at >= START, events.c.at < end)
            ).scalar_one()
            baseline = time.perf_counter() - begin
            begin = time.perf_counter()
            report = build(conn, LedgerSettings(), START, end, time.time())
            took = time.perf_counter() - begin
        engine.dispose()
        assert counted == rows == report.figures["events"], (counted, rows, report.figures["events"])
        print(
            f"{rows:,} events of {devices:,} devices (filled in {filled:.0f} s): report {took:.2f} s, "
            f"baseline count(*) {baseline:.2f} s, ratio {took / baseline:.1f}; "
            f"{report.figures['forced_logoffs']:,} forced logoffs, median confirmation "
            f"{report.figures['confirmation_median_s']:.2f} s, {report.figures['break_glass_uses']:,} break-glass uses"
        )
        return filled, took, baseline
    finally:
        drop_database(url)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", default="1000000,10000000", help="sizes to measure, comma-separated")
    parser.add_argument("--devices", type=int, default=5_000)
    args = parser.parse_args()
    measured = [(int(size), *measure(int(size), args.devices)) for size in args.rows.split(",")]
    if len(measured) > 1:
        (small, _, small_s, _), (large, _, large_s, _) = measured[0], measured[-1]
        print(f"scaling: {large / small:.0f}x the events took {large_s / small_s:.1f}x the time (goal < 30 s at 10M)")


if __name__ == "__main__":
    main()
