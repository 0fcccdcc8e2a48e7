"""NFC through nfcpy's real UDP frontend, with `handoff sim tap` as the badge."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator

import pytest

from handoff.readers.base import BadgePresented, BadgeRemoved, ReaderEvent
from handoff.readers.nfc import NfcReader
from handoff.sim.nfc_badge import cascade_levels
from tests.kit.cli import CliRunner
from tests.kit.net import free_udp_port

WAIT_S = 10.0


class Bench:
    def __init__(self) -> None:
        self.device = f"udp:127.0.0.1:{free_udp_port()}"
        self.events: queue.Queue[ReaderEvent] = queue.Queue()
        self.reader = NfcReader(self.device)
        self.reader.open(self.events.put)

    def next(self) -> ReaderEvent:
        return self.events.get(timeout=WAIT_S)

    def quiet(self, seconds: float) -> bool:
        try:
            self.events.get(timeout=seconds)
        except queue.Empty:
            return True
        return False


@pytest.fixture
def bench() -> Iterator[Bench]:
    setup = Bench()
    yield setup
    setup.reader.close()


@pytest.mark.parametrize("uid", ["04A1B2C3", "04A1B2C3D4E5F6", "04A1B2C3D4E5F6071829"])
def test_tap_lift_and_tap_again(bench: Bench, cli: CliRunner, uid: str) -> None:
    for _ in range(2):
        result = cli("sim", "tap", uid, "--device", bench.device, "--hold", "0.3")
        assert result.returncode == 0, result.stderr
        arrived, left = bench.next(), bench.next()
        assert isinstance(arrived, BadgePresented) and isinstance(left, BadgeRemoved)
        assert arrived.identifier == bytes.fromhex(uid) == left.identifier
        assert arrived.reader == f"nfc:{bench.device}" and arrived.technology == "iso14443a"
        assert uid.lower() not in repr(arrived).lower()


def test_badge_held_on_the_reader_is_one_arrival(bench: Bench, cli: CliRunner) -> None:
    result = cli("sim", "tap", "04A1B2C3", "--device", bench.device, "--hold", "2.5")
    assert result.returncode == 0, result.stderr
    assert isinstance(bench.next(), BadgePresented)
    assert isinstance(bench.next(), BadgeRemoved)
    assert bench.quiet(0.5)


def test_two_badges_back_to_back_are_two_taps(bench: Bench, cli: CliRunner) -> None:
    assert cli("sim", "tap", "04A1B2C3", "--device", bench.device, "--hold", "0.3").returncode == 0
    assert cli("sim", "tap", "04A1B2C3D4E5F6", "--device", bench.device, "--hold", "0.3").returncode == 0
    seen = [bench.next() for _ in range(4)]
    assert [type(e).__name__ for e in seen] == ["BadgePresented", "BadgeRemoved"] * 2
    assert [e.identifier.hex() for e in seen[::2]] == ["04a1b2c3", "04a1b2c3d4e5f6"]


def test_sim_tap_exits_1_when_no_reader_listens(cli: CliRunner) -> None:
    started = time.monotonic()
    result = cli("sim", "tap", "04A1B2C3", "--device", f"udp:127.0.0.1:{free_udp_port()}")
    assert result.returncode == 1 and "no reader" in result.stderr
    assert time.monotonic() - started < 15


@pytest.mark.parametrize(
    ("args", "culprit"),
    [(["04A1B2"], "3 bytes"), (["zz"], "hexadecimal"), (["04A1B2C3", "--device", "usb"], "udp:HOST:PORT")],
)
def test_sim_tap_bad_usage(cli: CliRunner, args: list[str], culprit: str) -> None:
    result = cli("sim", "tap", *args)
    assert result.returncode == 2 and culprit in result.stderr and "Traceback" not in result.stderr


def test_missing_usb_reader_is_reported_not_fatal() -> None:
    reader = NfcReader("usb:ffff:ffff")
    events: queue.Queue[ReaderEvent] = queue.Queue()
    reader.open(events.put)
    deadline = time.monotonic() + WAIT_S
    while reader.health().detail == "not opened yet" and time.monotonic() < deadline:
        time.sleep(0.05)
    health = reader.health()
    reader.close()
    assert not health.ok and "cannot open NFC reader usb:ffff:ffff" in health.detail


def test_cascade_levels_carry_uid_and_bcc() -> None:
    levels = cascade_levels(bytes.fromhex("04A1B2C3D4E5F6"))
    assert levels == [
        bytes.fromhex("8804A1B2") + bytes([0x88 ^ 0x04 ^ 0xA1 ^ 0xB2]),
        bytes.fromhex("C3D4E5F6") + bytes([0xC3 ^ 0xD4 ^ 0xE5 ^ 0xF6]),
    ]
    with pytest.raises(ValueError, match="4, 7 or 10"):
        cascade_levels(b"\x01\x02")
