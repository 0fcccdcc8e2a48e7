"""The anomaly rules on plain values (handoff.ledger.anomalies), and their `[ledger.anomalies]`
config: every bad value is one line naming its key, exit 2."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from handoff.config_errors import convert
from handoff.ledger.anomalies import (
    Hours,
    Live,
    Rules,
    Seen,
    State,
    Target,
    concurrent_use,
    detect,
    impossible_travel,
    off_hours,
    repeated_rejections,
)
from handoff.ledger.config import LedgerConfig
from handoff.provision.render import Table, render_toml
from tests.kit.cli import CliRunner
from tests.kit.ledger import audit_key

T = 1_800_000_000.0
NEW_YORK = ZoneInfo("America/New_York")


def tap(
    event_id: str, at: float, site: str = "north", device: str = "D1", staff: str | None = "ana", kind: str = "checkout"
) -> Seen:
    return Seen(event_id, kind, site, device, staff, f"s-{event_id}", at)


def test_concurrent_use_names_the_older_sessions_and_closes_when_one_is_left() -> None:
    live = [Live("ana", "D1", "north", "s1", T), Live("bo", "D3", "north", "s3", T)]
    found = concurrent_use(
        [tap("c2", T + 60, device="D2"), tap("i3", T + 61, device="D3", staff="bo", kind="checkin")], live
    )
    [anomaly] = found.opened
    assert (anomaly.kind, anomaly.key, anomaly.device_id) == ("concurrent_use", "ana", "D1")
    assert anomaly.targets == (Target("D1", "north", "s1"),)
    assert found.closed == [("concurrent_use", "bo")]
    ended = concurrent_use(
        [tap("i1", T + 70, device="D1", kind="checkin")], [*live, Live("ana", "D2", "north", "s-c2", T + 60)]
    )
    assert ended.opened == [] and ended.closed == [("concurrent_use", "ana")]


def test_a_second_session_that_began_and_ended_within_one_batch_is_found() -> None:
    batch = [
        tap("c1", T, device="D1"),
        tap("c2", T + 5, device="D2"),
        tap("i1", T + 10, device="D1", kind="checkin"),
        tap("c3", T + 20, device="D3", staff="bo"),
        tap("h1", T + 30, device="D3", staff="cy"),
    ]
    found = concurrent_use(batch, [])
    assert [(a.key, a.device_id, a.targets) for a in found.opened] == [("ana", "D1", (Target("D1", "north", "s-c1"),))]
    assert found.closed == [("concurrent_use", "ana"), ("concurrent_use", "bo"), ("concurrent_use", "cy")]


def test_a_handoff_ends_the_previous_holders_session_there() -> None:
    live = [Live("ana", "D1", "north", "s1", T)]
    batch = [tap("c9", T + 5, device="D1", staff="bo"), tap("c2", T + 6, device="D2")]
    assert concurrent_use(batch, live).opened == []


def test_impossible_travel_is_faster_than_the_configured_trip_and_only_between_those_sites() -> None:
    travel = {frozenset(("north", "south")): 900.0}
    earlier = tap("e1", T, "north", "D1")
    too_fast = tap("e2", T + 300, "south", "D9")
    slow_enough = tap("e3", T + 901, "south", "D9")
    unlisted = tap("e4", T + 10, "east", "D5")
    [found] = impossible_travel(travel, [too_fast], [earlier, too_fast])
    assert (found.key, found.device_id, found.targets) == ("e1>e2", "D1", (Target("D1", "north", "s-e1"),))
    assert impossible_travel(travel, [slow_enough], [earlier]) == []
    assert impossible_travel(travel, [unlisted], [earlier]) == []
    assert impossible_travel(travel, [tap("e5", T + 5, "north", "D2")], [earlier]) == []
    assert impossible_travel(travel, [tap("e6", T + 5, "south", staff="bo")], [earlier]) == []


def test_only_taps_in_a_row_are_compared() -> None:
    """Seen back north in time after a slow trip south: only the last leg is too fast."""
    travel = {frozenset(("north", "south")): 900.0}
    trail = [tap("a", T, "north"), tap("b", T + 1000, "south", "D9"), tap("c", T + 1100, "north", "D2")]
    assert [found.key for found in impossible_travel(travel, trail[2:], trail)] == ["b>c"]


def test_a_late_event_of_the_older_tap_still_names_the_older_device() -> None:
    travel = {frozenset(("north", "south")): 900.0}
    [found] = impossible_travel(travel, [tap("late", T, "north", "D1")], [tap("kept", T + 100, "south", "D9")])
    assert found.device_id == "D1" and found.key == "late>kept"


def test_repeated_rejections_count_within_the_window_and_an_accepted_tap_closes() -> None:
    stored = [tap(f"r{n}", T + n * 20, kind="tap_rejected", staff=None) for n in range(3)]
    fourth = tap("r3", T + 60, kind="tap_rejected", staff=None)
    assert repeated_rejections(4, 60.0, [fourth], [*stored, fourth]).opened[0].key == "D1"
    assert repeated_rejections(4, 59.0, [fourth], [*stored, fourth]).opened == []
    assert repeated_rejections(5, 600.0, [fourth], stored).opened == []
    accepted = tap("ok", T + 70)
    assert repeated_rejections(4, 60.0, [accepted], stored).closed == [("repeated_rejections", "D1")]
    assert repeated_rejections(4, 60.0, [tap("early", T - 1)], stored).closed == []


def test_off_hours_follows_the_role_the_time_zone_and_a_night_shift_past_midnight() -> None:
    weekdays_day = Hours(frozenset(range(5)), 7 * 60, 19 * 60)
    friday_night = Hours(frozenset({4}), 19 * 60, 7 * 60)
    shifts = {"RN": (weekdays_day, friday_night)}

    def at(text: str) -> float:
        return datetime.fromisoformat(text).replace(tzinfo=NEW_YORK).timestamp()

    def flagged(when: str, staff: str = "ana") -> bool:
        return bool(off_hours(shifts, NEW_YORK, [tap("c", at(when), staff=staff)], {"ana": "RN", "bo": "MD"}))

    assert not flagged("2026-12-02T08:00")
    assert flagged("2026-12-02T06:59")
    assert not flagged("2026-12-04T23:30")
    assert not flagged("2026-12-05T06:00")
    assert flagged("2026-12-05T08:00")
    assert not flagged("2026-12-05T08:00", staff="bo")
    assert not flagged("2026-12-05T08:00", staff="cy")


def test_detect_asks_only_the_rules_that_are_on() -> None:
    live = [Live("ana", "D1", "north", "s1", T), Live("ana", "D2", "north", "s2", T + 1)]
    new = [tap("c", T + 1, device="D2")]
    assert detect(Rules(), new, State(live=live)).opened == []
    assert [a.kind for a in detect(Rules(concurrent_use=True), new, State(live=live)).opened] == ["concurrent_use"]


@pytest.mark.parametrize(
    ("anomalies", "arrays", "key"),
    [
        ({"respond": ["concurrent_use"]}, {}, "ledger.anomalies.respond"),
        ({"respond": ["repeated_rejections"]}, {}, "ledger.anomalies.respond[0]"),
        ({}, {"travel": [{"sites": ["north", "north"], "min_s": 60.0}]}, "ledger.anomalies.travel[0].sites"),
        ({}, {"travel": [{"sites": ["a", "b"], "min_s": -1.0}]}, "ledger.anomalies.travel[0].min_s"),
        ({}, {"shifts": [{"role": "RN", "start": "7:00", "end": "19:00"}]}, "ledger.anomalies.shifts[0].start"),
        ({}, {"shifts": [{"role": "RN", "days": ["mon", "funday"], "start": "07:00", "end": "19:00"}]}, "days[1]"),
        ({"time_zone": "Mars/Olympus"}, {}, "ledger.anomalies.time_zone"),
        ({"repeated_rejections": -1}, {}, "ledger.anomalies.repeated_rejections"),
        ({"concurrent_use": True, "respond": ["concurrent_use"]}, {}, "ledger.command_key_file"),
    ],
)
def test_a_bad_anomaly_setting_is_one_line_naming_its_key(
    tmp_path: Path, cli: CliRunner, anomalies: Table, arrays: dict[str, list[Table]], key: str
) -> None:
    config = tmp_path / "ledger.toml"
    tables = {"ledger": {"database": f"sqlite:///{tmp_path / 'l.db'}"}, "ledger.anomalies": anomalies}
    config.write_text(render_toml(tables, {f"ledger.anomalies.{name}": items for name, items in arrays.items()}))
    result = cli("ledger", "run", "-c", config)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert key in line and "Traceback" not in line


def test_a_command_key_others_may_read_is_refused_at_start(tmp_path: Path, cli: CliRunner) -> None:
    key_file, _ = audit_key(tmp_path)
    key_file.chmod(0o644)
    config = tmp_path / "ledger.toml"
    tables = {"ledger": {"database": f"sqlite:///{tmp_path / 'l.db'}", "command_key_file": str(key_file)}}
    config.write_text(render_toml(tables, {}))
    result = cli("ledger", "run", "-c", config)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert f"ledger.command_key_file: {key_file} is a private key readable or writable by others" in line


def test_the_documented_example_parses() -> None:
    raw = {
        "ledger": {
            "command_key_file": "/etc/handoff/ledger-commands.key",
            "anomalies": {
                "concurrent_use": True,
                "repeated_rejections": 5,
                "rejections_within_s": 60.0,
                "time_zone": "America/New_York",
                "travel": [{"sites": ["north-campus", "south-campus"], "min_s": 1200.0}],
                "shifts": [{"role": "RN", "days": ["mon", "tue"], "start": "19:00", "end": "07:30"}],
                "respond": ["concurrent_use", "impossible_travel"],
            },
        }
    }
    rules = Rules.of(convert(raw, LedgerConfig).ledger.anomalies)
    assert rules.travel == {frozenset(("north-campus", "south-campus")): 1200.0}
    assert rules.shifts == {"RN": (Hours(frozenset({0, 1}), 19 * 60, 7 * 60 + 30),)}
    assert rules.respond == {"concurrent_use", "impossible_travel"}
