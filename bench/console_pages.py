"""The console's two heaviest pages, served by uvicorn in a child process as `handoff ledger
serve` serves them: the fleet page with DEVICES devices and a device page whose window holds
EVENTS events. Server time (the console's own Server-Timing) and client time p50/p99, against a
static file of the same size as each page served by the same server, behind the same login, in
the same run. Goal: server time p99 under 300 ms.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import tempfile
import time
from pathlib import Path

import httpx2 as httpx
import uvicorn
from sqlalchemy import Engine, insert
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from bench.chain_cost import percentile
from handoff.ledger.config import load_ledger_config
from handoff.ledger.console.app import create_app
from handoff.ledger.database import engine_for
from handoff.ledger.schema import devices, events
from handoff.testing.ledger import add_user, ledger_config
from handoff.testing.net import free_tcp_port
from handoff.testing.postgres import create_database, drop_database

BUSY = "D-00000"
USER, PASSWORD = "bench", "bench password 1"
CYCLE = (("checkout", None), ("forced_logoff", "idle_timeout"), ("reauth", None), ("checkin", "returned"))


def fill(engine: Engine, device_count: int, event_count: int, now: float) -> None:
    rng = random.Random(7)
    states = ("in_use", "locked", "available", "maintenance")
    rows = []
    for n in range(device_count):
        state = rng.choice(states)
        held = state in ("in_use", "locked")
        rows.append(
            {
                "device_id": f"D-{n:05d}",
                "site": f"site-{n % 12:02d}",
                "state": state,
                "staff_id": f"s-{rng.randrange(3000):04d}" if held else None,
                "session_id": None,
                "since": now - rng.uniform(0, 200_000) if held else None,
                "seq": n,
                "status": "offline" if rng.random() < 0.02 else "online",
                "last_heard": now - rng.uniform(0, 240),
            }
        )
    step = 6 * 86400 / event_count
    history = []
    for n in range(event_count):
        kind, reason = CYCLE[n % 4]
        history.append(
            {
                "id": f"e{n}",
                "source": "urn:handoff:site-00:rdr-busy",
                "seq": n + 1,
                "type": kind,
                "site": "site-00",
                "device_id": BUSY,
                "staff_id": f"s-{(n // 4) % 40:04d}",
                "session_id": f"session-{n // 2}",
                "reason": reason,
                "for_id": None,
                "at": now - 6 * 86400 + n * step,
                "chain_ok": True,
                "payload": "{}",
                "received": now,
            }
        )
    with engine.begin() as conn:
        conn.execute(insert(devices), rows)
        conn.execute(insert(events), history)


def serve(config: Path, port: int, baseline: Path) -> None:
    """The child: the console's own application, plus the baseline files behind the same login."""
    loaded = load_ledger_config(config)
    app = create_app(loaded, engine_for(loaded.ledger.database))
    app.router.routes.append(Mount("/baseline", StaticFiles(directory=str(baseline))))
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
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="handoff-console-bench-"))
    url = f"sqlite:///{root / 'ledger.db'}" if args.database == "sqlite" else create_database()
    try:
        config = ledger_config(root, url, 1883, {"listen": "127.0.0.1:8080", "allow_insecure": True})
        engine = engine_for(url)
        fill(engine, args.devices, args.events, time.time())
        engine.dispose()
        add_user(config, USER, "viewer", PASSWORD)
        port, baseline = free_tcp_port(), root / "baseline"
        baseline.mkdir()
        child = multiprocessing.get_context("spawn").Process(target=serve, args=(config, port, baseline))
        child.start()
        try:
            run(port, baseline, args)
        finally:
            child.terminate()
            child.join(10)
    finally:
        if args.database == "postgresql":
            drop_database(url)


def run(port: int, baseline: Path, args: argparse.Namespace) -> None:
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=30) as client:
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
        pages = {"fleet": "/fleet", "device": f"/devices/{BUSY}"}
        print(f"console pages: {args.devices} devices, {args.events} events on {BUSY}, {args.database}")
        for name, path in pages.items():
            body = client.get(path)
            body.raise_for_status()
            (baseline / f"{name}.html").write_bytes(body.content)
            timed(client, path, 5)
            timed(client, f"/baseline/{name}.html", 5)
            page_server, page_wall, size = timed(client, path, args.requests)
            file_server, file_wall, _ = timed(client, f"/baseline/{name}.html", args.requests)
            p99 = percentile(page_server, 0.99)
            print(
                f"  {name:6s} {size / 1024:7.0f} KiB  server p50 {percentile(page_server, 0.5):6.1f} ms"
                f"  p99 {p99:6.1f} ms (goal < 300: {'met' if p99 < 300 else 'MISSED'})"
                f"  client p50 {percentile(page_wall, 0.5):6.1f} p99 {percentile(page_wall, 0.99):6.1f} ms"
            )
            print(
                f"  {'static':6s} {size / 1024:7.0f} KiB  server p50 {percentile(file_server, 0.5):6.1f} ms"
                f"  p99 {percentile(file_server, 0.99):6.1f} ms"
                f"  client p50 {percentile(file_wall, 0.5):6.1f} p99 {percentile(file_wall, 0.99):6.1f} ms"
                f"  -> page/static client p99 {percentile(page_wall, 0.99) / percentile(file_wall, 0.99):.1f}x"
            )


if __name__ == "__main__":
    main()
