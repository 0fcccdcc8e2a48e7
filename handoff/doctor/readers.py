"""Checks of the configured badge readers, one kind after another, in plain words.

nfcpy paths open; pcscd lists the PC/SC ones; a wedge reader is found and can be grabbed
exclusively; an OSDP reader's key file is usable, its port opens and the reader brings up the
Secure Channel with the site key. A reader `handoff run` is using right now cannot be opened by
doctor at the same time: that is said as such, and `handoff status` shows its live health.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import nfc
import serial
from smartcard.Exceptions import SmartcardException
from smartcard.pcsc.PCSCExceptions import BaseSCardException
from smartcard.System import readers

from handoff.config import (
    Config,
    KeyboardReaderConfig,
    NfcReaderConfig,
    OsdpReaderConfig,
    PcscReaderConfig,
    ReaderConfig,
)
from handoff.doctor.result import CheckResult, failed, passed, skipped, warned
from handoff.errors import ConfigError
from handoff.readers.keyboard import find_device, grab_when_released
from handoff.readers.osdp import probe
from handoff.readers.scbk import load_scbk

IN_USE = "handoff run holds it while it runs; its live health is in: handoff status"


def check_reader_list(config: Config) -> CheckResult:
    if not config.readers:
        return warned("readers", "none configured: no badge can be read; add a [[readers]] table")
    described = "; ".join(_describe(reader) for reader in config.readers)
    return passed("readers", f"{len(config.readers)} configured: {described}")


def _describe(reader: ReaderConfig) -> str:
    if isinstance(reader, NfcReaderConfig):
        return f"nfc {reader.path}"
    if isinstance(reader, PcscReaderConfig):
        return f"pcsc {reader.name!r}" if reader.name else "pcsc (any reader)"
    if isinstance(reader, KeyboardReaderConfig):
        return f"keyboard {reader.match!r}"
    return f"osdp {reader.port} address {reader.address}"


def check_nfc_readers(config: Config) -> list[CheckResult]:
    results = []
    for reader in (r for r in config.readers if isinstance(r, NfcReaderConfig)):
        name = f"nfc reader {reader.path}"
        try:
            frontend = nfc.ContactlessFrontend()
            opened = frontend.open(reader.path)
            frontend.close()
        except Exception as exc:
            opened, detail = False, str(exc)
        else:
            detail = "nothing found there"
        if opened:
            results.append(passed(name, "opens"))
        else:
            results.append(
                failed(
                    name,
                    f"cannot open ({detail}); plug the reader in, check udev permission, "
                    "and that handoff run is not holding it",
                )
            )
    return results or [skipped("nfc readers", "no nfc reader configured")]


def check_pcsc_readers(config: Config) -> list[CheckResult]:
    wanted = [r for r in config.readers if isinstance(r, PcscReaderConfig)]
    if not wanted:
        return [skipped("pcscd", "no pcsc reader configured")]
    try:
        present = [str(r) for r in readers()]
    except (BaseSCardException, SmartcardException) as exc:
        return [failed("pcscd", f"not reachable ({exc}); run: sudo systemctl enable --now pcscd")]
    results = [passed("pcscd", f"running, {len(present)} reader(s): {', '.join(present) or 'none'}")]
    for reader in wanted:
        label = f"pcsc reader {reader.name!r}" if reader.name else "pcsc reader (any)"
        if any(reader.name in p for p in present):
            results.append(passed(label, "present"))
        else:
            results.append(failed(label, "no PC/SC reader name contains it; plug it in or fix readers.name"))
    return results


def check_keyboard_readers(config: Config) -> list[CheckResult]:
    results = []
    for reader in (r for r in config.readers if isinstance(r, KeyboardReaderConfig)):
        name = f"keyboard reader {reader.match!r}"
        device = find_device(reader.match)
        if device is None:
            results.append(
                failed(
                    name,
                    "no input device matches; plug the reader in; if it is plugged in, the handoff user "
                    "may lack the input group (see hw/readers.md)",
                )
            )
            continue
        where = f"{os.fsdecode(device.path)} ({device.name})"
        try:
            grab_when_released(device, lambda: False)
        except OSError as exc:
            results.append(
                failed(
                    name,
                    f"found {where} but it cannot be grabbed exclusively ({exc.strerror}): {IN_USE}, "
                    "or another program holds it, and then it is not read",
                )
            )
        else:
            results.append(passed(name, f"found {where}; it can be grabbed exclusively"))
            with contextlib.suppress(OSError):
                device.ungrab()
        finally:
            device.close()
    return results or [skipped("keyboard readers", "no keyboard reader configured")]


def check_osdp_readers(config: Config) -> list[CheckResult]:
    results = []
    for index, reader in enumerate(config.readers):
        if isinstance(reader, OsdpReaderConfig):
            results.extend(_check_osdp(index, reader))
    return results or [skipped("osdp readers", "no osdp reader configured")]


def _check_osdp(index: int, reader: OsdpReaderConfig) -> list[CheckResult]:
    name = f"osdp reader {reader.port} address {reader.address}"
    try:
        scbk = load_scbk(reader.scbk_file, f"readers[{index}].scbk_file")
    except ConfigError as exc:
        return [failed(f"{name} key", str(exc))]
    results = [passed(f"{name} key", f"{reader.scbk_file} is readable, private and not the default key")]
    if not Path(reader.port).exists():
        results.append(failed(name, f"{reader.port} does not exist; plug in the RS-485 adapter (see ls /dev/handoff/)"))
        return results
    try:
        problem = probe(reader.port, reader.address, reader.baud, scbk)
    except serial.SerialException as exc:
        if "exclusively lock" in str(exc):
            results.append(warned(name, f"{reader.port} is busy: {IN_USE}"))
        else:
            results.append(failed(name, f"{reader.port} cannot be opened ({exc}); check udev permission"))
        return results
    if problem is None:
        results.append(passed(name, f"answers at {reader.baud} baud; Secure Channel up with the site key"))
    else:
        results.append(failed(name, problem))
    return results
