"""OSDP readers against libosdp's own PeripheralDevice on a pseudo-terminal: the real protocol,
Secure Channel and all, with the reader's firmware played by the library's PD side."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from osdp import CardFormat, Command, CommandLEDColor, StatusReportType

from handoff.config import OsdpReaderConfig
from handoff.errors import ConfigError
from handoff.feedback.cues import PATTERNS, Cue
from handoff.feedback.osdp_lights import colour_for
from handoff.feedback.output import CueFeedback
from handoff.readers.base import BadgePresented, BadgeRemoved, BadRead, ReaderEvent
from handoff.readers.osdp import OsdpReader, card_credential
from handoff.readers.pacs import Credential, encode
from handoff.readers.registry import build_readers
from handoff.readers.scbk import SCBK_D, load_scbk, scbk_text
from handoff.testing.child import spawn_handoff
from tests.kit.broker import Broker
from tests.kit.cli import CliRunner
from tests.kit.collector import Collector
from tests.kit.config import PREFIX, Layout
from tests.kit.osdp_pd import SimulatedReader
from tests.kit.timing import ALONE

SITE_KEY = bytes.fromhex("8d3a55e1c2b04f9e6a7d10b3c5e8f241")
OTHER_KEY = bytes.fromhex("00112233445566778899aabbccddeeff")
ANA = Credential("h10301", 42, 12345)
WAIT_S = 10.0


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


class Panel:
    """An OsdpReader (the appliance's side) on the simulated reader's port, collecting what it reports."""

    def __init__(self, pd: SimulatedReader, scbk: bytes = SITE_KEY) -> None:
        self.pd = pd
        self.reader = OsdpReader(pd.port, pd.address, 9600, scbk)
        self.events: queue.Queue[ReaderEvent] = queue.Queue()
        self.reader.open(self.events.put)

    def detail(self) -> str:
        return self.reader.health().detail

    def online(self) -> bool:
        return wait_until(lambda: self.reader.health().ok)

    def next(self) -> ReaderEvent:
        return self.events.get(timeout=WAIT_S)


@pytest.fixture
def pd() -> Iterator[SimulatedReader]:
    reader = SimulatedReader(scbk=SITE_KEY)
    yield reader
    reader.close()


@pytest.fixture
def panel(pd: SimulatedReader) -> Iterator[Panel]:
    opened = Panel(pd)
    yield opened
    opened.reader.close()


def key_file(directory: Path, scbk: bytes) -> Path:
    path = directory / "osdp.scbk"
    path.write_bytes(scbk_text(scbk))
    path.chmod(0o600)
    return path


@pytest.mark.parametrize(
    "credential", [ANA, Credential("h10302", 0, 34_359_738_367), Credential("c1k35", 4095, 1_048_575)]
)
def test_secure_channel_with_the_site_key_and_a_card_read_decoded(
    pd: SimulatedReader, panel: Panel, credential: Credential
) -> None:
    assert panel.online(), panel.detail()
    assert pd.secure()
    assert "secure channel up with the reader at address 0" in panel.detail()
    assert wait_until(lambda: {"command": Command.Status, "type": StatusReportType.Local} in pd.received())
    pd.badge(credential)
    arrived, left = panel.next(), panel.next()
    assert isinstance(arrived, BadgePresented) and isinstance(left, BadgeRemoved)
    assert arrived.identifier == left.identifier == credential.badge_bytes
    assert arrived.identifier == b"pacs\x00" + credential.identifier.encode()


def test_bad_parity_is_an_unreadable_bad_read_that_shows_no_bits(pd: SimulatedReader, panel: Panel) -> None:
    assert panel.online(), panel.detail()
    bits = encode(ANA)
    flipped = bits[:5] + ("1" if bits[5] == "0" else "0") + bits[6:]
    pd.card(flipped)
    bad = panel.next()
    assert isinstance(bad, BadRead) and bad.reason == "unreadable"
    assert "parity" in bad.problem and flipped not in bad.problem and "12345" not in bad.problem
    pd.card("1" * 32)
    unknown = panel.next()
    assert isinstance(unknown, BadRead) and "no known PACS format for 32 bits" in unknown.problem


def test_card_data_that_is_not_raw_bits_or_falls_short_is_refused() -> None:
    with pytest.raises(ValueError, match="ASCII text; set it to send raw Wiegand bits"):
        card_credential({"format": CardFormat.ASCII, "length": 56, "data": b"0012345"})
    with pytest.raises(ValueError, match="announced 26 bits and sent 16"):
        card_credential({"format": CardFormat.Wiegand, "length": 26, "data": b"\x55\xaa"})
    assert card_credential({"format": CardFormat.Unspecified, "length": 26, "data": _packed(encode(ANA))}) == ANA


def _packed(bits: str) -> bytes:
    padded = bits + "0" * (-len(bits) % 8)
    return int(padded, 2).to_bytes(len(padded) // 8, "big")


def test_a_wrong_key_gives_no_secure_channel_and_no_reads() -> None:
    pd = SimulatedReader(scbk=OTHER_KEY)
    panel = Panel(pd)
    try:
        assert wait_until(lambda: "refuses the Secure Channel" in panel.detail()), panel.detail()
        assert not panel.reader.health().ok and not pd.secure()
        pd.badge(ANA)
        with pytest.raises(queue.Empty):
            panel.events.get(timeout=2.0)
    finally:
        panel.reader.close()
        pd.close()


def test_a_port_where_nothing_answers_is_offline_in_plain_words(pd: SimulatedReader) -> None:
    pd.go_silent()
    panel = Panel(pd)
    try:
        assert wait_until(lambda: "nothing answers at address 0" in panel.detail()), panel.detail()
    finally:
        panel.reader.close()


def test_a_missing_port_is_named(tmp_path: Path) -> None:
    reader = OsdpReader(str(tmp_path / "ttyUSB9"), 0, 9600, SITE_KEY)
    reader.open(lambda _event: None)
    try:
        assert wait_until(lambda: f"cannot open {tmp_path / 'ttyUSB9'}" in reader.health().detail)
    finally:
        reader.close()


def test_the_reader_going_silent_is_offline_then_found_again(pd: SimulatedReader, panel: Panel) -> None:
    assert panel.online(), panel.detail()
    pd.go_silent()
    assert wait_until(lambda: "offline: the reader at address 0" in panel.detail(), 20.0), panel.detail()
    assert not panel.reader.health().ok
    pd.answer_again()
    assert wait_until(lambda: panel.reader.health().ok, 20.0), panel.detail()
    pd.badge(ANA)
    assert isinstance(panel.next(), BadgePresented)


def test_an_adapter_pulled_out_is_reported_not_left_online(pd: SimulatedReader, panel: Panel) -> None:
    """The port's reads fail: libosdp's thread must not die with the reader still marked online."""
    assert panel.online(), panel.detail()
    pd.unplug()
    assert wait_until(lambda: f"{pd.port} failed" in panel.detail() or "cannot open" in panel.detail()), panel.detail()
    assert not panel.reader.health().ok


def test_tamper_and_power_reports_go_into_health(pd: SimulatedReader, panel: Panel) -> None:
    assert panel.online(), panel.detail()
    pd.local_status(tamper=True, power=False)
    assert wait_until(lambda: "TAMPER" in panel.detail()), panel.detail()
    assert not panel.reader.health().ok and "POWER" not in panel.detail()
    pd.local_status(tamper=False, power=True)
    assert wait_until(lambda: "POWER" in panel.detail() and "TAMPER" not in panel.detail()), panel.detail()
    pd.local_status(tamper=False, power=False)
    assert wait_until(lambda: panel.reader.health().ok), panel.detail()


def _feedback_commands(pd: SimulatedReader, since: float) -> list[tuple[float, int, int | bool]]:
    """(seconds after `since`, command, colour or tone on) for every LED and buzzer command the PD got."""
    seen = []
    for at, command in pd.commands:
        if at < since:
            continue
        if command["command"] == Command.LED:
            seen.append((at - since, Command.LED, command["on_color"]))
        elif command["command"] == Command.Buzzer:
            seen.append((at - since, Command.Buzzer, command["control_code"] == 2))
    return seen


def _expected(cue: Cue) -> list[tuple[float, int, int | bool]]:
    """The commands a cue should send, at its frames' start times: only changes, LED before buzzer."""
    expected: list[tuple[float, int, int | bool]] = []
    shown: tuple[int, bool] = (CommandLEDColor.Black, False)
    at = 0.0
    for lit, seconds in [*((frame.on, frame.seconds) for frame in PATTERNS[cue]), (frozenset(), 0.0)]:
        colour, buzzing = colour_for(lit), "buzzer" in lit
        if colour != shown[0]:
            expected.append((at, Command.LED, colour))
        if buzzing != shown[1]:
            expected.append((at, Command.Buzzer, buzzing))
        shown, at = (colour, buzzing), at + seconds
    return expected


@ALONE
@pytest.mark.parametrize("cue", [Cue.ACCEPTED, Cue.REJECTED, Cue.LOCKED, Cue.IDLE_WARNING, Cue.UNCONFIRMED])
def test_a_cue_plays_on_the_readers_led_and_buzzer_with_its_timing(pd: SimulatedReader, panel: Panel, cue: Cue) -> None:
    assert panel.online(), panel.detail()
    feedback = CueFeedback([panel.reader.lights])
    expected = _expected(cue)
    try:
        assert wait_until(lambda: len(_feedback_commands(pd, 0.0)) >= 2)
        shown = time.monotonic()
        feedback.show(cue)
        assert wait_until(lambda: len(_feedback_commands(pd, shown)) >= len(expected))
        time.sleep(0.3)
    finally:
        feedback.close()
    got = _feedback_commands(pd, shown)
    assert [(command, value) for _, command, value in got] == [(command, value) for _, command, value in expected]
    assert got[0][0] < 0.3, f"the cue reached the reader {got[0][0]:.3f} s late"
    lateness = [round(at - got[0][0] - due, 3) for (at, _, _), (due, _, _) in zip(got, expected, strict=True)]
    # OSDP carries one command per exchange with the reader, about 60 ms apart here: a frame that
    # changes both LED and buzzer has its buzzer command a whole exchange after its LED command,
    # which a late poll can push to 0.12 s (seen: 0.122 s on a quiet machine).
    assert all(-0.05 < late < 0.15 for late in lateness), f"commands off their frame times by {lateness} s"


def test_the_default_key_is_refused_at_load_with_the_key_named(tmp_path: Path) -> None:
    path = key_file(tmp_path, SCBK_D)
    with pytest.raises(ConfigError, match=r"readers\[1\]\.scbk_file: .* public OSDP default key SCBK-D"):
        load_scbk(path, "readers[1].scbk_file")
    with pytest.raises(ConfigError, match=r"readers\[0\]\.scbk_file"):
        build_readers([OsdpReaderConfig(port="/dev/ttyUSB0", scbk_file=path)])


@pytest.mark.parametrize(
    ("content", "problem"),
    [(b"8d3a55e1c2b04f9e\n", "32 hex digits"), (b"zz" * 16, "32 hex digits"), (b"\xff" * 32, "non-ASCII")],
)
def test_a_malformed_key_file_is_refused_plainly(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "osdp.scbk"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(ConfigError, match=problem):
        load_scbk(path, "readers[0].scbk_file")


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = key_file(tmp_path, SITE_KEY)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_scbk(path, "readers[0].scbk_file")


def test_handoff_run_refuses_the_default_key_in_one_line(appliance: Layout, cli: CliRunner) -> None:
    path = key_file(appliance.root, SCBK_D)
    appliance.configure(readers=[{"kind": "osdp", "port": "/dev/ttyUSB0", "scbk_file": str(path)}])
    result = cli("run", "-c", appliance.config, timeout=30)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "readers[0].scbk_file" in result.stderr and "SCBK-D" in result.stderr


def test_provision_sets_the_site_key_on_a_reader_in_install_mode(tmp_path: Path, cli: CliRunner) -> None:
    """A reader fresh from the box only takes SCBK-D; provision gives it the site key, once."""
    pd = SimulatedReader(scbk=None)
    try:
        out = tmp_path / "etc"
        result = cli(
            *("provision", "--site", "st-elsewhere", "--device-id", "WOW-3N-07", "--reader-id", "rdr-0042"),
            *("--mqtt-url", "mqtts://broker.example:8883", "--generate-secret", "--no-broker-check"),
            *("--output-dir", out, "--osdp", pd.port, "--osdp-scbk-file", out / "osdp.scbk", "--osdp-install"),
        )
        assert result.returncode == 0, result.stderr
        assert f"site key set on the OSDP reader at address 0 on {pd.port}" in result.stdout
        scbk = load_scbk(out / "osdp.scbk", "scbk_file")
        assert (out / "osdp.scbk").stat().st_mode & 0o777 == 0o600
        panel = Panel(pd, scbk)
        try:
            assert panel.online(), panel.detail()
            pd.badge(ANA)
            assert isinstance(panel.next(), BadgePresented)
        finally:
            panel.reader.close()
        again = cli("provision", "--output-dir", out, "--force", *result.args[4:])
        assert again.returncode == 0, again.stderr
        assert load_scbk(out / "osdp.scbk", "scbk_file") == scbk
    finally:
        pd.close()


def test_a_card_read_reaches_the_broker_through_handoff_run(
    pd: SimulatedReader, appliance: Layout, cli: CliRunner, tmp_path: Path
) -> None:
    broker = Broker(tmp_path / "broker")
    broker.start()
    events = Collector(broker.port, f"{PREFIX}/#")
    path = key_file(appliance.root, SITE_KEY)
    appliance.configure(port=broker.port, readers=[{"kind": "osdp", "port": pd.port, "scbk_file": str(path)}])
    csv = appliance.root / "badges.csv"
    csv.write_text(f"uid,staff_id,name,role\n{ANA.identifier},ana,Ana Diaz,RN\n")
    assert cli("badges", "import", csv, "-c", appliance.config).returncode == 0
    process = spawn_handoff("run", "-c", appliance.config)
    try:
        events.wait_for(lambda m: m.topic == f"{PREFIX}/status" and m.json().get("status") == "online")
        assert wait_until(pd.secure), "no secure channel with handoff run"
        assert wait_until(lambda: bool(pd.commands)), "handoff run never set the reader's LED"
        tapped = time.monotonic()
        pd.badge(ANA)
        checkout = events.wait_for(lambda m: "/events/" in m.topic).json()
        assert (checkout["type"], checkout["data"]["staff_id"]) == ("org.handoff.checkout", "ana")
        assert wait_until(lambda: (Command.Buzzer, True) in [(c, v) for _, c, v in _feedback_commands(pd, tapped)])
        status = events.wait_for(
            lambda m: m.topic == f"{PREFIX}/status" and [r["ok"] for r in m.json().get("readers", [])] == [True]
        ).json()
        assert status["readers"][0]["kind"] == "osdp"
        assert "secure channel up" in status["readers"][0]["detail"]
        assert wait_until(lambda: "kind=osdp, ok=True" in cli("status", "-c", appliance.config).stdout)
    finally:
        process.terminate()
        log = process.communicate(timeout=10)[1].decode()
        events.close()
        broker.stop()
    assert ANA.identifier not in log and encode(ANA) not in log
    assert process.returncode == 0, log
