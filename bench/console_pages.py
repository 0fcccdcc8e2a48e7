"""Every console page at a hospital's size, served by uvicorn in a child process as `handoff
ledger serve` serves them: DEVICES devices (with their asset records and a staff directory),
EXCEPTIONS exceptions (most of them closed) and EVENTS events spread over the fleet's last DAYS
days, plus a busy device whose week holds BUSY_EVENTS (the custody tables then back-filled from them,
as migration 0011 does, since the events are not ingested). Server time (the console's own
Server-Timing) and client time p50/p99 of each page, against a static file of the same size as
that page served by the same server, behind the same login, in the same run. Goal: every page's
server time p99 under 150 ms.

`--events` is what loads here in a few minutes (on PostgreSQL the server makes them with
generate_series); the load rate is printed, and running two sizes shows how each page scales
with the ledger's age.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import uvicorn
from sqlalchemy import Engine, insert, select, text
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from bench.chain_cost import percentile
from handoff.ledger import custody
from handoff.ledger.config import load_ledger_config
from handoff.ledger.console.app import create_app, settle_for_serving
from handoff.ledger.database import engine_for
from handoff.ledger.schema import assets, devices, events, exceptions, staff
from handoff.testing.ledger import add_user, ledger_config
from handoff.testing.net import free_tcp_port
from handoff.testing.postgres import create_database, drop_database

BUSY = "D-00000"
USER, PASSWORD = "bench", "bench password 1"
CYCLE = (("checkout", None), ("forced_logoff", "idle_timeout"), ("reauth", None), ("checkin", "returned"))
STAFF = 3000
KINDS = ("appliance_offline", "overdue", "logoff_unconfirmed", "seq_gap", "clock_unsynced")
CHUNK = 50_000
GOAL_MS = 150


def fill(engine: Engine, args: argparse.Namespace, now: float) -> None:
    """The fleet, its registers, its exceptions, the busy device's week, then the fleet's events
    in chunks (timed: the load rate is part of the answer)."""
    rng = random.Random(7)
    states = ("in_use", "locked", "available", "maintenance")
    fleet = []
    for n in range(args.devices):
        state = rng.choice(states)
        held = state in ("in_use", "locked")
        fleet.append(
            {
                "device_id": f"D-{n:05d}",
                "site": f"site-{n % 12:02d}",
                "state": state,
                "staff_id": f"s-{rng.randrange(STAFF):04d}" if held else None,
                "session_id": None,
                "since": now - rng.uniform(0, 200_000) if held else None,
                "seq": n,
                "status": "offline" if rng.random() < 0.02 else "online",
                "last_heard": now - rng.uniform(0, 240),
            }
        )
    people = [
        {"staff_id": f"s-{n:04d}", "name": f"Person {n:04d}", "role": "nurse", "revoked": False} for n in range(STAFF)
    ]
    register = [
        {"device_id": f"D-{n:05d}", "model": "WOW cart", "unit": f"unit {n % 40}", "asset_tag": f"BIO-{n}", "site": ""}
        for n in range(args.devices)
    ]
    flags = []
    for n in range(args.exceptions):
        kind = KINDS[n % len(KINDS)]
        device_id = f"D-{n % args.devices:05d}"
        opened = now - rng.uniform(0, args.days * 86400)
        closed = None if n % 7 == 0 else opened + rng.uniform(60, 86400)
        flags.append(
            {"type": kind, "device_id": device_id, "source": "", "key": f"{device_id}:{n}", "opened": opened,
             "closed": closed, "detail": f"bench exception {n}"}
        )  # fmt: skip
    with engine.begin() as conn:
        conn.execute(insert(devices), fleet)
        conn.execute(insert(staff), people)
        conn.execute(insert(assets), register)
        for start in range(0, len(flags), CHUNK):
            conn.execute(insert(exceptions), flags[start : start + CHUNK])
        conn.execute(insert(events), busy_week(args.busy_events, now))
    started = time.perf_counter()
    with engine.begin() as conn:
        made = 0
        if engine.dialect.name == "postgresql":
            per_device = max(4, args.events // (args.devices - 1))
            for start in range(0, args.events, 1_000_000):
                stop = min(args.events, start + 1_000_000) - 1
                values = {"start": start, "stop": stop, "others": args.devices - 1, "per_device": per_device}
                conn.exec_driver_sql(
                    FILL, {**values, "from": now - args.days * 86400, "step": args.days * 86400 / per_device}
                )
                made = stop + 1
        else:
            for chunk in fleet_events(args.devices, args.events, args.days, now):
                conn.execute(insert(events), chunk)
                made += len(chunk)
    took = time.perf_counter() - started
    print(f"loaded {made + args.busy_events} events in {took:.0f} s ({made / max(took, 1e-9):,.0f}/s)")
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("ANALYZE events"))  # as an existing ledger's would be, before its migration
    started = time.perf_counter()
    with engine.begin() as conn:
        walked = custody.rebuild(conn)
    took = time.perf_counter() - started
    print(f"custody of {walked} devices walked from their events (migration 0011's back-fill) in {took:.0f} s")


FILL = """
INSERT INTO events
    (id, source, seq, type, site, device_id, staff_id, session_id, reason, at, chain_ok, payload, received)
SELECT 'f' || n, 'urn:handoff:s:r' || d, k + 1,
       (ARRAY['checkout', 'forced_logoff', 'reauth', 'checkin'])[k %% 4 + 1],
       'site-00', 'D-' || lpad(d::text, 5, '0'), 's-' || lpad(((k / 4 * 7 + d * 13) %% 3000)::text, 4, '0'),
       'f' || d || '-' || k / 2, (ARRAY[NULL, 'idle_timeout', NULL, 'returned'])[k %% 4 + 1],
       %(from)s + k * %(step)s + (d %% 60), true, '{}', %(from)s + k * %(step)s
FROM (SELECT n, 1 + n %% %(others)s AS d, n / %(others)s AS k
      FROM generate_series(%(start)s::bigint, %(stop)s::bigint) AS n) AS made
"""
"""PostgreSQL makes the fleet's events itself (as bench.ledger_who does), ten times faster than
inserting them: each device other than BUSY checks out, is locked, reauthenticates and checks
in, in turn, over DAYS days."""


def busy_week(count: int, now: float) -> list[dict[str, object]]:
    """BUSY's last six days: `count` events, 40 people taking turns."""
    step = 6 * 86400 / count
    return [
        event(
            f"busy{n}",
            "urn:handoff:site-00:rdr-busy",
            n + 1,
            n,
            BUSY,
            f"s-{(n // 4) % 40:04d}",
            now - 6 * 86400 + n * step,
        )
        for n in range(count)
    ]


def fleet_events(device_count: int, count: int, days: float, now: float) -> Iterator[list[dict[str, object]]]:
    """`count` events over `days`, every device cycling through custody, by rounds over the fleet."""
    rounds = max(1, count // (4 * device_count))
    span = days * 86400 / rounds
    rng = random.Random(11)
    chunk: list[dict[str, object]] = []
    for r in range(rounds):
        for d in range(1, device_count):
            device_id, who = f"D-{d:05d}", f"s-{rng.randrange(STAFF):04d}"
            start = now - days * 86400 + r * span
            for k in range(4):
                at = start + span * (k + 1) / 6
                chunk.append(event(f"f{d}-{r}-{k}", f"urn:handoff:s:r{d}", 4 * r + k + 1, k, device_id, who, at))
            if len(chunk) >= CHUNK:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def event(
    event_id: str, source: str, seq: int, step: int, device_id: str, staff_id: str, at: float
) -> dict[str, object]:
    kind, reason = CYCLE[step % 4]
    return {
        "id": event_id,
        "source": source,
        "seq": seq,
        "type": kind,
        "site": "site-00",
        "device_id": device_id,
        "staff_id": staff_id,
        "session_id": f"{event_id}-session",
        "reason": reason,
        "for_id": None,
        "at": at,
        "chain_ok": True,
        "payload": "{}",
        "received": at,
    }


def serve(config: Path, port: int, baseline: Path) -> None:
    """The child: the console's own application, plus the baseline files behind the same login."""
    loaded = load_ledger_config(config)
    app = create_app(loaded, engine_for(loaded.ledger.database))
    app.router.routes.append(Mount("/baseline", StaticFiles(directory=str(baseline))))
    settle_for_serving()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def timed(client: httpx.Client, path: str, count: int) -> tuple[list[float], list[float], int]:
    server, wall, size = [], [], 0
    for _ in range(count):
        started = time.perf_counter()
        response = client.get(path)
        wall.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        server.append(float(response.headers["server-timing"].split("dur=")[1]))
        size = len(response.content)
    return server, wall, size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=5_000)
    parser.add_argument("--exceptions", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--busy-events", type=int, default=10_000)
    parser.add_argument("--days", type=float, default=90)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="postgresql")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="handoff-console-bench-"))
    url = f"sqlite:///{root / 'ledger.db'}" if args.database == "sqlite" else create_database()
    try:
        config = ledger_config(root, url, 1883, {"listen": "127.0.0.1:8080", "allow_insecure": True})
        engine = engine_for(url)
        fill(engine, args, time.time())
        with engine.connect() as conn:
            first_flag = conn.execute(select(exceptions.c.id).order_by(exceptions.c.id.desc()).limit(1)).scalar_one()
            if engine.dialect.name == "postgresql":
                conn.execute(text("ANALYZE"))
                conn.commit()
        engine.dispose()
        add_user(config, USER, "admin", PASSWORD)
        port, baseline = free_tcp_port(), root / "baseline"
        baseline.mkdir()
        child = multiprocessing.get_context("spawn").Process(target=serve, args=(config, port, baseline))
        child.start()
        try:
            run(port, baseline, args, first_flag)
        finally:
            child.terminate()
            child.join(10)
    finally:
        if args.database == "postgresql":
            drop_database(url)


def run(port: int, baseline: Path, args: argparse.Namespace, flag_id: int) -> None:
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=60) as client:
        deadline = time.monotonic() + 30
        while True:
            try:
                form = client.get("/login")
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        csrf = form.text.split('name="csrf" value="')[1].split('"')[0]
        client.post("/login", data={"csrf": csrf, "name": USER, "password": PASSWORD})
        pages = {
            "fleet": "/fleet",
            "fleet-q": "/fleet?q=person%2000&sort=holder",
            "device-busy": f"/devices/{BUSY}",
            "device-busy-who": f"/devices/{BUSY}?sort=who&page=5",
            "device": "/devices/D-00042",
            "staff": "/staff/s-0001",
            "staff-index": "/staff",
            "exceptions": "/exceptions",
            "exc-filter": "/exceptions?type=logoff_unconfirmed&status=open&page=2",
            "exc-text": "/exceptions?q=D-00042",
            "exception": f"/exceptions/{flag_id}",
            "search": "/search?q=IO-42",
            "who": f"/who?device={BUSY}&at=2030-01-01T00:00:00Z",
            "audit": "/audit",
            "users": "/users",
            "enrolment": "/enrolment",
        }
        print(
            f"console pages: {args.devices} devices, {args.exceptions} exceptions, {args.events} events"
            f" over {args.days:.0f} days + {args.busy_events} on {BUSY}'s week, {args.database}"
        )
        missed = []
        for name, path in pages.items():
            body = client.get(path)
            body.raise_for_status()
            (baseline / f"{name}.html").write_bytes(body.content)
            timed(client, path, 5)
            timed(client, f"/baseline/{name}.html", 5)
            page_server, page_wall, size = timed(client, path, args.requests)
            file_server, file_wall, _ = timed(client, f"/baseline/{name}.html", args.requests)
            p99 = percentile(page_server, 0.99)
            if p99 >= GOAL_MS:
                missed.append(name)
            print(
                f"  {name:12s} {size / 1024:6.0f} KiB  server p50 {percentile(page_server, 0.5):6.1f}"
                f" p99 {p99:6.1f} ms  client p99 {percentile(page_wall, 0.99):6.1f} ms"
                f"  | static server p99 {percentile(file_server, 0.99):5.1f}"
                f" client p99 {percentile(file_wall, 0.99):5.1f} ms"
                f" -> {percentile(page_wall, 0.99) / percentile(file_wall, 0.99):5.1f}x"
            )
        print(
            f"goal: every page's server p99 < {GOAL_MS} ms: {'met' if not missed else 'MISSED by ' + ', '.join(missed)}"
        )


if __name__ == "__main__":
    main()
