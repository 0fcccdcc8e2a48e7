"""`handoff doctor` on each reader kind, against real parts where they run here: libosdp's own
PeripheralDevice on a pty for OSDP, the real evdev device list for wedge readers (empty here:
the grab checks with a virtual keyboard are in test_keyboard_reader.py and run on a Pi)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from handoff.config import Config, load_config
from handoff.doctor.readers import check_keyboard_readers, check_osdp_readers, check_reader_list
from handoff.doctor.result import Status
from handoff.provision.render import Table
from handoff.readers.osdp import OsdpReader
from handoff.readers.scbk import SCBK_D, scbk_text
from tests.kit.cli import handoff_env
from tests.kit.config import Layout
from tests.kit.osdp_pd import SimulatedReader
from tests.kit.pcscd import ONE_PCSCD

pytestmark = ONE_PCSCD

SITE_KEY = bytes.fromhex("8d3a55e1c2b04f9e6a7d10b3c5e8f241")


@pytest.fixture
def pd() -> Iterator[SimulatedReader]:
    reader = SimulatedReader(scbk=SITE_KEY)
    yield reader
    reader.close()


def osdp_config(appliance: Layout, port: str, scbk: bytes = SITE_KEY) -> Config:
    key = appliance.root / "osdp.scbk"
    key.write_bytes(scbk_text(scbk))
    key.chmod(0o600)
    appliance.configure(readers=[{"kind": "osdp", "port": port, "scbk_file": str(key)}])
    return load_config(appliance.config)


def lines(config: Config) -> list[tuple[Status, str]]:
    return [(r.status, r.line()) for r in check_osdp_readers(config)]


def test_an_osdp_reader_with_the_site_key_passes_every_check(appliance: Layout, pd: SimulatedReader) -> None:
    results = lines(osdp_config(appliance, pd.port))
    assert [status for status, _ in results] == [Status.PASS, Status.PASS], results
    assert "not the default key" in results[0][1]
    assert "Secure Channel up with the site key" in results[1][1]


def test_an_osdp_reader_on_another_key_fails_and_says_why(appliance: Layout) -> None:
    other = SimulatedReader(scbk=bytes(range(16)))
    try:
        results = lines(osdp_config(appliance, other.port))
    finally:
        other.close()
    assert [status for status, _ in results] == [Status.PASS, Status.FAIL], results
    assert "refuses the Secure Channel with the site key" in results[1][1]


def test_the_default_key_fails_the_key_check_and_the_port_is_not_tried(appliance: Layout, pd: SimulatedReader) -> None:
    results = lines(osdp_config(appliance, pd.port, SCBK_D))
    assert [status for status, _ in results] == [Status.FAIL], results
    assert "readers[0].scbk_file" in results[0][1] and "SCBK-D" in results[0][1]


def test_a_missing_port_and_a_silent_reader_fail_in_plain_words(appliance: Layout, pd: SimulatedReader) -> None:
    missing = lines(osdp_config(appliance, str(appliance.root / "ttyUSB7")))
    assert missing[1][0] is Status.FAIL and "does not exist; plug in the RS-485 adapter" in missing[1][1]
    pd.go_silent()
    silent = lines(osdp_config(appliance, pd.port))
    assert silent[1][0] is Status.FAIL and "nothing answers at address 0" in silent[1][1]


def test_a_port_handoff_run_holds_is_a_warning_pointing_at_status(appliance: Layout, pd: SimulatedReader) -> None:
    running = OsdpReader(pd.port, 0, 9600, SITE_KEY)
    running.open(lambda _event: None)
    try:
        config = osdp_config(appliance, pd.port)
        deadline = time.monotonic() + 10
        while not running.health().ok and time.monotonic() < deadline:
            time.sleep(0.05)
        assert running.health().ok, running.health().detail
        results = lines(config)
    finally:
        running.close()
    assert results[1][0] is Status.WARN and "busy: handoff run holds it" in results[1][1]


def test_a_wedge_reader_that_is_not_plugged_in_fails_in_plain_words(appliance: Layout) -> None:
    appliance.configure(readers=[{"kind": "keyboard", "match": "RFIDeas"}])
    (result,) = check_keyboard_readers(load_config(appliance.config))
    assert result.status is Status.FAIL
    assert result.line().startswith("FAIL  keyboard reader 'RFIDeas': no input device matches; plug the reader in")


def test_the_reader_list_names_every_kind(appliance: Layout) -> None:
    readers: list[Table] = [
        {"kind": "nfc", "path": "usb"},
        {"kind": "pcsc", "name": "OMNIKEY"},
        {"kind": "keyboard", "match": "usb:0c27:3bfa"},
        {"kind": "osdp", "port": "/dev/handoff/osdp0", "address": 3, "scbk_file": "/etc/handoff/osdp.scbk"},
    ]
    appliance.configure(readers=readers)
    result = check_reader_list(load_config(appliance.config))
    assert result.line() == (
        "PASS  readers: 4 configured: nfc usb; pcsc 'OMNIKEY'; keyboard 'usb:0c27:3bfa'; "
        "osdp /dev/handoff/osdp0 address 3"
    )
    appliance.configure()
    assert check_reader_list(load_config(appliance.config)).status is Status.WARN


def test_doctor_checks_each_reader_kind(appliance: Layout, pd: SimulatedReader) -> None:
    key = appliance.root / "osdp.scbk"
    key.write_bytes(scbk_text(SITE_KEY))
    key.chmod(0o600)
    appliance.configure(
        readers=[
            {"kind": "nfc", "path": "udp:127.0.0.1:9"},
            {"kind": "pcsc", "name": "No Such Reader"},
            {"kind": "keyboard", "match": "RFIDeas"},
            {"kind": "osdp", "port": pd.port, "scbk_file": str(key)},
        ]
    )
    done = subprocess.run(
        [sys.executable, "-m", "handoff", "doctor", "-c", str(appliance.config)],
        capture_output=True,
        text=True,
        env=handoff_env(),
        timeout=120,
        check=False,
    )
    out = done.stdout
    assert "readers: 4 configured" in out
    for check in ("nfc reader udp:127.0.0.1:9", "pcscd", "keyboard reader 'RFIDeas'"):
        assert f"  {check}: " in out, out
    assert f"PASS  osdp reader {pd.port} address 0: answers at 9600 baud" in out, out
    assert "Traceback" not in done.stderr
