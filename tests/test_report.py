"""The evidence report (`handoff ledger report`, the console's /report; docs/ledger.md): a ledger
filled by `handoff sim fleet` through a real broker and a real `handoff ledger run`, plus a ward
cart's session ends, confirmations and break-glass uses through the real ingest; every figure of
the report is checked against the stored events, computed here in Python, independently of the
SQL that made it. On SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import math
import random
import re
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from handoff.ledger import break_glass
from handoff.ledger.config import load_ledger_config
from handoff.ledger.console.app import create_app
from handoff.ledger.database import writing
from handoff.ledger.ingest import Message, Recorder
from handoff.ledger.report import ANOMALIES, CONFIRMATION_BUCKETS_S
from handoff.ledger.schema import events, exceptions
from handoff.sim.fleet import SimAppliance
from handoff.timefmt import rfc3339
from tests.kit.broker import Broker
from tests.kit.console import log_in
from tests.kit.ledger import (
    Ledger,
    add_user,
    enrolled,
    enrolled_fleet,
    ledger_command,
    ledger_config,
    sim_fleet,
    stored,
)
from tests.kit.wait import wait_for

DAY = 86400.0
REASONS = ("idle_timeout", "handoff", "role_changed", "max_session")


def a_ward_cart(engine: Engine, now: float, rng: random.Random) -> None:
    """Forty sessions over four days, each ended by a forced logoff for one of REASONS; most
    confirmed by the agent after a random delay, some reported unconfirmed, some not answered;
    three break-glass uses by one nurse (one over the limit of 2), one of them reviewed."""
    cart = SimAppliance("ward", "WOW-W")
    enrolled(engine, cart)
    made: list[tuple[str, bytes]] = []
    for n in range(40):
        at = now - 4 * DAY + n * 8000.0
        staff = f"nurse-{n % 5}"
        made.append(cart.emit("checkout", at, staff))
        topic, payload = cart.emit("forced_logoff", at + 600, staff, reason=REASONS[n % len(REASONS)])
        made.append((topic, payload))
        answer = n % 4
        if answer in (0, 1):
            made.append(cart.emit("logoff_confirmed", at + 600 + rng.uniform(0.2, 40), staff, for_id=_id(payload)))
        elif answer == 2:
            made.append(cart.emit("logoff_unconfirmed", at + 610, staff, reason="timeout", for_id=_id(payload)))
    for n in range(3):
        made.append(cart.emit("break_glass", now - 3 * DAY + n * 3600, "nurse-9", reason="revoked"))
    with writing(engine) as conn:
        assert Recorder("handoff/v1").apply(conn, [Message(*m) for m in made], now) == 0
    with writing(engine) as conn:
        first = conn.execute(
            select(exceptions.c.id).where(exceptions.c.type == break_glass.KIND).order_by(exceptions.c.id)
        ).first()
        assert first is not None
        break_glass.close_with_review(conn, first.id, "admin", "checked with the ward", now)


def _id(payload: bytes) -> str:
    return str(json.loads(payload)["id"])


def expected(engine: Engine, start: float, end: float) -> dict[str, Any]:
    """The figures, from every stored row, in Python."""
    with engine.connect() as conn:
        rows = [json.loads(p) for p in conn.execute(select(events.c.payload)).scalars()]
        flags = conn.execute(select(exceptions)).all()
    kinds = [(row["type"].removeprefix("org.handoff."), row) for row in rows]
    at = {row["id"]: datetime.fromisoformat(row["time"]).timestamp() for _, row in kinds}
    inside = [(kind, row) for kind, row in kinds if start <= at[row["id"]] < end]
    ended = [row for kind, row in inside if kind == "forced_logoff"]
    confirmations: dict[str, float] = {}
    for kind, row in kinds:
        if kind == "logoff_confirmed":
            first = confirmations.get(row["data"]["for"], math.inf)
            confirmations[row["data"]["for"]] = min(first, at[row["id"]])
    delays = sorted(confirmations[row["id"]] - at[row["id"]] for row in ended if row["id"] in confirmations)
    uses = sorted((at[row["id"]], row) for kind, row in kinds if kind == "break_glass")
    over = sum(
        1
        for when, row in uses
        if start <= when < end
        and sum(
            1
            for other, o in uses
            if o["data"]["staff_id"] == row["data"]["staff_id"] and when - 30 * DAY < other <= when
        )
        > 2
    )
    reviewed = {f.key for f in flags if f.type == break_glass.KIND and f.closed is not None}
    checkouts = Counter(
        datetime.fromtimestamp(at[row["id"]], UTC).strftime("%Y-%m-%d") for kind, row in inside if kind == "checkout"
    )

    def rank(fraction: float) -> float | None:
        return delays[max(1, math.ceil(fraction * len(delays))) - 1] if delays else None

    buckets = Counter(
        next((i for i, b in enumerate(CONFIRMATION_BUCKETS_S) if d <= b), len(CONFIRMATION_BUCKETS_S)) for d in delays
    )
    by_type: dict[str, list[int]] = {}
    for flag in flags:
        counts = by_type.setdefault(flag.type, [0, 0, 0, 0])
        counts[0] += start <= flag.opened < end
        counts[1] += flag.closed is not None and start <= flag.closed < end
        counts[2] += flag.acked_at is not None and start <= flag.acked_at < end
        counts[3] += flag.closed is None
    reasons = Counter(row["data"]["reason"] for row in ended)
    return {
        "events": len(inside),
        "checkouts": sum(checkouts.values()),
        "session_ends_by_reason": dict(reasons),
        "idle_timeouts": reasons["idle_timeout"],
        "role_changes": reasons["role_changed"],
        "forced_logoffs": len(ended),
        "logoffs_confirmed": len(delays),
        "session_ends_reported_unconfirmed": sum(1 for kind, _ in inside if kind == "logoff_unconfirmed"),
        "confirmation_median_s": rank(0.5),
        "confirmation_p99_s": rank(0.99),
        "confirmed_share": len(delays) / len(ended),
        "break_glass_uses": sum(1 for when, _ in uses if start <= when < end),
        "break_glass_over_limit": over,
        "break_glass_reviewed": sum(
            1 for when, row in uses if start <= when < end and break_glass.key(row["id"]) in reviewed
        ),
        "daily": sorted(checkouts.items()),
        "buckets": [buckets.get(i, 0) for i in range(len(CONFIRMATION_BUCKETS_S) + 1)],
        "by_type": by_type,
        "open_total": sum(1 for flag in flags if flag.closed is None),
    }


def test_the_report_figures_match_the_events_that_made_them(
    tmp_path: Path, engine: Engine, database: str, rng: random.Random
) -> None:
    now = time.time()
    with Broker(tmp_path / "broker") as broker:
        config = ledger_config(tmp_path, database, broker.port)
        ledger = Ledger(config, tmp_path / "ledger.log")
        ledger.start()
        enrolled_fleet(engine, tmp_path / "keys", 4)
        assert sim_fleet(broker.port, rate=2000, events=1200, keys=tmp_path / "keys").wait(120) == 0
        assert wait_for(lambda: stored(engine) >= 1200, 60), stored(engine)
        ledger.kill()
    a_ward_cart(engine, now, rng)
    with engine.begin() as conn:  # two anomalies the ledger opened, one since acknowledged
        for key, acked in (("nurse-1", now - 50), ("nurse-2", None)):
            conn.execute(
                exceptions.insert().values(
                    type="concurrent_use",
                    device_id="WOW-W",
                    source="",
                    key=key,
                    opened=now - 100,
                    detail="on two devices",
                    acked_by="sec" if acked else None,
                    acked_at=acked,
                )
            )
    start, end = now - 5 * DAY, now + 3600
    want = expected(engine, start, end)
    assert want["checkouts"] >= 600 + 40 and want["break_glass_over_limit"] == 1, "the fill is what the test meant"
    result = ledger_command(config, "report", "--from", rfc3339(start), "--until", rfc3339(end), "--format", "json")
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    figures = got["figures"]
    for name in (
        "events",
        "checkouts",
        "session_ends_by_reason",
        "idle_timeouts",
        "role_changes",
        "forced_logoffs",
        "logoffs_confirmed",
        "session_ends_reported_unconfirmed",
        "break_glass_uses",
        "break_glass_over_limit",
        "break_glass_reviewed",
    ):
        assert figures[name] == want[name], name
    for name in ("confirmation_median_s", "confirmation_p99_s", "confirmed_share"):
        assert math.isclose(figures[name], want[name], rel_tol=1e-9), name
    assert figures["break_glass_not_reviewed"] == want["break_glass_uses"] - want["break_glass_reviewed"]
    assert (figures["devices_heard"], figures["devices_enrolled"], figures["devices_with_agents"]) == (5, 5, 0)
    days = [(datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d"), count) for at, count in got["daily_checkouts"]]
    assert days == want["daily"]
    assert [count for _, count in got["confirmation_times"]] == want["buckets"]
    by_type = {c["kind"]: [c["opened"], c["closed"], c["acknowledged"], c["still_open"]] for c in got["exceptions"]}
    assert by_type == want["by_type"] and "break_glass_review" in by_type and "clock_skew" in by_type
    assert got["open_total"] == want["open_total"] == len(got["still_open"])
    anomalies = [by_type.get(kind, [0, 0, 0, 0]) for kind in ANOMALIES]
    assert (
        [figures["anomalies_opened"], figures["anomalies_acknowledged"], figures["anomalies_still_open"]]
        == [
            sum(counts[0] for counts in anomalies),
            sum(counts[2] for counts in anomalies),
            sum(counts[3] for counts in anomalies),
        ]
        == [2, 1, 2]
    )

    page = ledger_command(config, "report", "--from", rfc3339(start), "--until", rfc3339(end)).stdout
    assert page.startswith("<!doctype html>") and page.count("<svg") == 2 and "<script" not in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "one file: no external asset"
    assert f"<td>{want['idle_timeouts']}</td>" in page
    sheet = ledger_command(config, "report", "--from", rfc3339(start), "--until", rfc3339(end), "--format", "csv")
    rows = list(csv.reader(io.StringIO(sheet.stdout)))
    assert rows[0] == ["section", "name", "value"]
    assert ["Automatic logoff", "sessions ended by idle timeout", str(want["idle_timeouts"])] in rows
    anomaly_rows = [row for row in rows if row[0] == "Anomalous session detection with an automated response"]
    assert len(anomaly_rows) == 9 and ["setting: concurrent_use", "off"] in [row[1:] for row in anomaly_rows]


def test_a_bad_window_is_one_line_and_exit_2(tmp_path: Path, cli: Any) -> None:
    config = ledger_config(tmp_path, f"sqlite:///{tmp_path / 'ledger.db'}", 1883)
    for args, said in (
        (("--from", "2027-02-01T00:00:00Z", "--until", "2027-01-01T00:00:00Z"), "--until"),
        (("--from", "yesterday", "--until", "2027-01-01T00:00:00Z"), "--from 'yesterday'"),
        (("--from", "2027-01-01T00:00:00", "--until", "2027-02-01T00:00:00Z"), "no UTC offset"),
    ):
        result = ledger_command(config, "report", *args)
        assert result.returncode == 2 and said in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert (
        ledger_command(config, "report", "--from", "2027-01-01T00:00:00Z", "--until", "2027-02-01T00:00:00Z").returncode
        == 0
    )


def test_the_console_report_page_and_its_downloads(
    tmp_path: Path, engine: Engine, database: str, rng: random.Random
) -> None:
    now = time.time()
    a_ward_cart(engine, now, rng)
    config = ledger_config(tmp_path, database, 1883)
    add_user(config, "auditor", "viewer", "viewer password 1")
    with TestClient(create_app(load_ledger_config(config), engine), base_url="https://testserver") as client:
        log_in(client, "auditor", "viewer password 1")
        page = client.get("/report")
        assert page.status_code == 200 and page.text.count("<svg") == 2
        assert "break-glass uses" in page.text and "Emergency access" in page.text
        window = {"from": rfc3339(now - 5 * DAY), "until": rfc3339(now + 60)}
        for form, media in (("html", "text/html"), ("csv", "text/csv"), ("json", "application/json")):
            got = client.get("/report", params={**window, "format": form})
            assert got.status_code == 200 and got.headers["content-type"].startswith(media)
            assert "attachment" in got.headers["content-disposition"]
        figures = client.get("/report", params={**window, "format": "json"}).json()["figures"]
        assert figures["break_glass_uses"] == 3 and figures["break_glass_reviewed"] == 1
        assert client.get("/report", params={"from": "soon"}).status_code == 400
        assert client.get("/report", params={**window, "format": "pdf"}).status_code == 400
