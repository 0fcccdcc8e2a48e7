"""The console as it runs: a real `handoff ledger serve` (uvicorn) beside a real `handoff ledger
run` on the same SQLite file, fed by `handoff sim fleet` through a real mosquitto; and a client
that sends what a browser never would."""

from __future__ import annotations

import contextlib
import signal
import socket
from collections import Counter
from pathlib import Path

import httpx2 as httpx
from sqlalchemy import func, select

from handoff.ledger.database import engine_for
from handoff.ledger.schema import events
from tests.kit.broker import Broker
from tests.kit.console import log_in
from tests.kit.ledger import Console, Ledger, enrolled_fleet, ledger_config, sim_fleet, sqlite_ledger, wait_for

ADMIN = ("night-biomed", "a long admin passphrase")
ROUNDS = 40
"""Each round logs in afresh (argon2, then the session row and the audit row are written) and
pages (each page view writes its session's last activity): 40 logins, 80 page views."""
PAGES = ("/fleet", "/devices/SIM-00000")


def test_logging_in_and_paging_while_a_sqlite_ledger_takes_50_events_a_second_never_fails(tmp_path: Path) -> None:
    database = sqlite_ledger(tmp_path / "ledger.db")
    engine = engine_for(database)

    def stored() -> int:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(events)).scalar_one())

    with Broker(tmp_path / "broker") as broker:
        console = Console(tmp_path, database, broker.port)
        console.add_user(ADMIN[0], "admin", ADMIN[1])
        ledger = Ledger(ledger_config(tmp_path, database, broker.port), tmp_path / "ledger.log")
        ledger.start()
        keys = tmp_path / "keys"
        enrolled_fleet(engine, keys, 10)  # the ledger believes enrolled keys only
        fleet = sim_fleet(broker.port, rate=50, events=20_000, appliances=10, keys=keys)
        try:
            assert wait_for(lambda: stored() > 50), "the ledger is not storing the fleet's events"
            with console, httpx.Client(base_url=console.url, timeout=30) as client:
                before = stored()
                statuses: Counter[tuple[str, int]] = Counter()
                for _ in range(ROUNDS):
                    client.cookies.clear()
                    statuses["login", log_in(client, *ADMIN).status_code] += 1
                    for path in PAGES:
                        statuses[path, client.get(path).status_code] += 1
                after = stored()
            assert fleet.poll() is None, "the fleet stopped before the console finished"
        finally:
            fleet.kill()
            fleet.wait()
            ledger.kill(signal.SIGTERM)
            engine.dispose()
    assert statuses == Counter({("login", 303): ROUNDS} | {(path, 200): ROUNDS for path in PAGES})
    assert after - before > ROUNDS, f"the ledger stored only {after - before} events meanwhile"
    log = console.log.read_text()
    assert "Traceback" not in log and "database is locked" not in log, log[-3000:]


def test_a_300_mb_post_to_login_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """Were the body read (or spooled to disk) before the answer, no answer would come before
    the client sent all 300 MB; it comes after the first megabyte."""
    with Console(tmp_path, sqlite_ledger(tmp_path / "ledger.db"), 1) as console:
        with socket.create_connection(("127.0.0.1", console.port), timeout=10) as raw:
            raw.sendall(
                b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: multipart/form-data; boundary=xyz\r\n"
                + f"Content-Length: {300 * 1024 * 1024}\r\n\r\n".encode()
                + b'--xyz\r\nContent-Disposition: form-data; name="f"; filename="big"\r\n\r\n'
            )
            with contextlib.suppress(OSError):  # the console may close while the megabyte is on its way
                raw.sendall(b"\0" * 1024 * 1024)
            answer = raw.recv(4096)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert b"content-security-policy" in answer.lower()
        with httpx.Client(base_url=console.url) as client:
            assert client.get("/healthz").text == "ok\n", "the refusal hurt the console"
