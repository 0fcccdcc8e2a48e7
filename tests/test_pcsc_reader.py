"""Smartcards through a real pcscd and the vsmartcard-vpcd reader, with `handoff sim card`."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handoff.config import NfcReaderConfig, PcscReaderConfig
from handoff.readers.apdu import CardRejected, split_response, uid_from_get_data
from handoff.readers.base import BadgePresented, BadgeRemoved, BadRead, ReaderEvent, ReaderHealth
from handoff.readers.pcsc import PcscReader
from handoff.readers.registry import build_readers
from handoff.sim.vpcd import VirtualCard
from tests.kit import pcscd
from tests.kit.cli import CliRunner
from tests.kit.net import free_udp_port
from tests.kit.pcscd import ONE_PCSCD

pytestmark = ONE_PCSCD

WAIT_S = 15.0


class Watch:
    def __init__(self, name: str = "Virtual PCD") -> None:
        pcscd.ensure_running()
        self.events: queue.Queue[ReaderEvent] = queue.Queue()
        self.reader = PcscReader(name)
        self.reader.open(self.events.put)

    def health_once(self, settled: Callable[[ReaderHealth], bool]) -> ReaderHealth:
        """The reader's health once `settled` holds for it, or at the wait's end."""
        deadline = time.monotonic() + WAIT_S
        while not settled(health := self.reader.health()) and time.monotonic() < deadline:
            time.sleep(0.05)
        return health

    def next(self) -> ReaderEvent:
        return self.events.get(timeout=WAIT_S)


@pytest.fixture
def watch() -> Iterator[Watch]:
    setup = Watch()
    setup.health_once(lambda health: health.ok)
    yield setup
    setup.reader.close()


@pytest.mark.parametrize("uid", ["04A1B2C3", "04A1B2C3D4E5F6", "04A1B2C3D4E5F6071829"])
def test_insert_and_remove(watch: Watch, cli: CliRunner, uid: str) -> None:
    result = cli("sim", "card", uid, "--hold", "0.3")
    assert result.returncode == 0, result.stderr
    inserted, removed = watch.next(), watch.next()
    assert isinstance(inserted, BadgePresented) and isinstance(removed, BadgeRemoved)
    assert inserted.identifier == bytes.fromhex(uid) == removed.identifier
    assert inserted.reader == "pcsc:Virtual PCD 00 00"
    assert "watching Virtual PCD 00 00" in watch.reader.health().detail


def test_card_that_refuses_get_uid_is_a_bad_read(watch: Watch) -> None:
    card = VirtualCard(lambda _apdu: b"\x6a\x81")
    assert card.insert("127.0.0.1", pcscd.VPCD_PORT, 0.3, 5)
    bad = watch.next()
    assert isinstance(bad, BadRead) and bad.reason == "unreadable" and "6A81" in bad.problem


def test_truncated_answer_is_a_bad_read_not_a_wrong_uid(watch: Watch) -> None:
    card = VirtualCard(lambda _apdu: b"\x04\xa1\x90")
    assert card.insert("127.0.0.1", pcscd.VPCD_PORT, 0.3, 5)
    bad = watch.next()
    assert isinstance(bad, BadRead)


def test_pcscd_restart_is_survived(watch: Watch, cli: CliRunner) -> None:
    pcscd.restart()
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if watch.reader.health().ok:
            break
        time.sleep(0.1)
    assert watch.reader.health().ok, watch.reader.health().detail
    for _ in range(2):
        assert cli("sim", "card", "04A1B2C3", "--hold", "0.3").returncode == 0
        seen = watch.next()
        if isinstance(seen, BadgePresented):
            break
        assert isinstance(seen, BadRead), "a fresh pcscd may drop the very first card link; never a wrong UID"
    assert isinstance(seen, BadgePresented) and seen.identifier == bytes.fromhex("04A1B2C3")


def test_no_matching_reader_is_reported_in_plain_words() -> None:
    watch = Watch("Omnikey 5427")
    try:
        health = watch.health_once(lambda health: health.detail != "not opened yet")
        assert not health.ok and "no PC/SC reader whose name contains 'Omnikey 5427'" in health.detail
    finally:
        watch.reader.close()


def test_sim_card_exits_1_when_no_reader_uses_it(cli: CliRunner) -> None:
    pcscd.ensure_running()
    result = cli("sim", "card", "04A1B2C3", "--vpcd", "127.0.0.1:35964", "--hold", "0.2")
    assert result.returncode == 1 and "no reader used the card" in result.stderr


@given(st.lists(st.integers(min_value=0, max_value=255), max_size=40))
def test_response_parsers_never_invent_an_identifier(response: list[int]) -> None:
    try:
        data, status_word = split_response(response)
        uid = uid_from_get_data(data, status_word)
    except CardRejected as rejected:
        assert rejected.reason == "unreadable"
        return
    assert bytes(response) == uid + b"\x90\x00"
    assert len(uid) in (4, 7, 8, 10)


@pytest.mark.parametrize(
    ("response", "problem"),
    [([0x90], "no status word"), ([0x6A, 0x82], "status 6A82"), ([1, 2, 3, 0x90, 0x00], "3 bytes")],
)
def test_bad_answers_are_refused_plainly(response: list[int], problem: str) -> None:
    with pytest.raises(CardRejected, match=problem):
        uid_from_get_data(*split_response(response))


def test_both_reader_kinds_merge_into_one_stream(cli: CliRunner) -> None:
    pcscd.ensure_running()
    nfc_path = f"udp:127.0.0.1:{free_udp_port()}"
    events: queue.Queue[ReaderEvent] = queue.Queue()
    readers = build_readers([NfcReaderConfig(path=nfc_path), PcscReaderConfig(name="PCD 00 00")])
    readers.open(events.put)
    try:
        assert cli("sim", "card", "04A1B2C3D4E5F6", "--hold", "0.3").returncode == 0
        assert cli("sim", "tap", "04A1B2C3", "--device", nfc_path, "--hold", "0.3").returncode == 0
        seen = [events.get(timeout=WAIT_S) for _ in range(4)]
        arrivals = [(e.reader, e.identifier.hex()) for e in seen if isinstance(e, BadgePresented)]
        assert arrivals == [("pcsc:Virtual PCD 00 00", "04a1b2c3d4e5f6"), (f"nfc:{nfc_path}", "04a1b2c3")]
        assert [h.ok for h in readers.health()] == [True, True]
    finally:
        readers.close()


@pytest.mark.parametrize("lock", [True, False])
def test_a_contact_card_pulled_from_a_locking_reader_says_so(cli: CliRunner, lock: bool) -> None:
    """`lock_on_card_removal` from the config reaches the removal the appliance turns into card_removed."""
    pcscd.ensure_running()
    events: queue.Queue[ReaderEvent] = queue.Queue()
    readers = build_readers([PcscReaderConfig(name="PCD 00 00", lock_on_card_removal=lock)])
    readers.open(events.put)
    try:
        deadline = time.monotonic() + WAIT_S
        while not all(h.ok for h in readers.health()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cli("sim", "card", "04A1B2C3", "--hold", "0.3").returncode == 0
        inserted, removed = events.get(timeout=WAIT_S), events.get(timeout=WAIT_S)
        assert isinstance(inserted, BadgePresented) and isinstance(removed, BadgeRemoved)
        assert removed.card_pulled is lock
    finally:
        readers.close()
