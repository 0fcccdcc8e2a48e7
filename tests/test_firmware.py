"""The firmware files agree with each other and with the code: groups, readers, drivers."""

from __future__ import annotations

import configparser
import re
import subprocess

import pytest

from handoff.doctor.system import NFC_STEALING_MODULES
from tests.kit.cli import REPO

FIRMWARE = REPO / "firmware"


def unit() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(FIRMWARE / "handoff.service")
    return parser


def test_unit_is_notify_with_watchdog_and_sandbox() -> None:
    service = unit()["Service"]
    assert service["Type"] == "notify" and int(service["WatchdogSec"]) > 0
    assert service["Restart"] == "on-failure" and service["User"] == "handoff"
    assert service["ProtectSystem"] == "strict" and service["NoNewPrivileges"] == "yes"
    assert service["CapabilityBoundingSet"] == "" and "handoff run" in service["ExecStart"]


def test_udev_rules_grant_the_units_group_every_usb_reader_listed_in_hw() -> None:
    rules = "".join((FIRMWARE / name).read_text() for name in ("60-handoff-nfc.rules", "61-handoff-readers.rules"))
    groups = set(re.findall(r'GROUP="([^"]+)"', rules))
    assert groups == {unit()["Service"]["Group"]}
    granted = set(re.findall(r'idVendor}=="(\w{4})", ATTRS{idProduct}=="(\w{4})"', rules))
    listed = set(re.findall(r"`(\w{4}):(\w{4})`", (REPO / "hw" / "readers.md").read_text()))
    assert listed and listed == granted


def test_blacklist_covers_the_drivers_doctor_looks_for() -> None:
    text = (FIRMWARE / "blacklist-pn533.conf").read_text()
    assert {line.split()[1] for line in text.splitlines() if line.startswith("blacklist")} >= set(NFC_STEALING_MODULES)


def test_install_script_parses() -> None:
    subprocess.run(["bash", "-n", str(FIRMWARE / "install.sh")], check=True)


@pytest.mark.parametrize(
    "name", ["handoff.service", "handoff-agent.service", "handoff-ledger.service", "handoff-console.service"]
)
def test_unit_exposure_is_low(name: str) -> None:
    report = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(FIRMWARE / name)],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    exposure = float(re.search(rf"Overall exposure level for {name}: ([\d.]+)", report).group(1))  # type: ignore[union-attr]
    assert exposure < 3.0, report[-2000:]


def test_every_rules_file_is_installed_and_its_device_classes_pass_the_sandbox() -> None:
    """A rule that gives a node to the handoff group is useless if DevicePolicy=closed hides it."""
    install = (FIRMWARE / "install.sh").read_text()
    for rules in FIRMWARE.glob("6*-handoff-*.rules"):  # udev; 50-handoff-agent.rules is polkit
        assert f'"$here/{rules.name}"' in install
    allowed = (FIRMWARE / "handoff.service").read_text()
    readers = (FIRMWARE / "61-handoff-readers.rules").read_text()
    assert 'SUBSYSTEM=="input"' in readers and "DeviceAllow=char-input rw" in allowed
    assert 'SUBSYSTEM=="tty"' in readers and "DeviceAllow=char-ttyUSB rw" in allowed


def test_agent_unit_runs_the_agent_as_its_own_user_that_polkit_lets_end_sessions() -> None:
    parser = configparser.RawConfigParser(strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(FIRMWARE / "handoff-agent.service")
    service = parser["Service"]
    assert "handoff agent -c" in service["ExecStart"] and service["User"] == "handoff-agent"
    assert service["CapabilityBoundingSet"] == "" and service["ProtectSystem"] == "strict"
    assert set(service["RestrictAddressFamilies"].split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    rules = (FIRMWARE / "50-handoff-agent.rules").read_text()
    assert 'subject.user == "handoff-agent"' in rules
    assert set(re.findall(r'action.id == "([^"]+)"', rules)) == {
        "org.freedesktop.login1.lock-sessions",
        "org.freedesktop.login1.manage",
    }


@pytest.mark.parametrize(("name", "action"), [("handoff-ledger.service", "run"), ("handoff-console.service", "serve")])
def test_ledger_units_run_their_command_as_their_own_user_with_private_files(name: str, action: str) -> None:
    """ledger.db holds password hashes: every file the service makes is its user's alone."""
    parser = configparser.RawConfigParser(strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(FIRMWARE / name)
    service = parser["Service"]
    assert f"handoff ledger {action} -c /etc/handoff/ledger.toml" in service["ExecStart"]
    assert service["User"] == "handoff-ledger" and service["UMask"] == "0077"
    assert service["Restart"] == "on-failure" and service["StateDirectoryMode"] == "0700"
    assert service["ProtectSystem"] == "strict" and service["CapabilityBoundingSet"] == ""
    assert service["ReadWritePaths"] == "/var/lib/handoff" and service["NoNewPrivileges"] == "yes"
