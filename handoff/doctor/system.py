"""Checks of the host: kernel NFC drivers, clock, GPIO board support."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Final

from handoff.clock import clock_synced
from handoff.config import Config
from handoff.doctor.result import CheckResult, failed, passed, skipped, warned
from handoff.errors import ConfigError
from handoff.feedback.board import load_board

NFC_STEALING_MODULES: Final = ("pn533", "pn533_usb", "port100")
PROC_MODULES: Final = Path("/proc/modules")
PI_MODEL: Final = Path("/proc/device-tree/model")


def loaded_modules(proc_modules: Path) -> set[str]:
    text = proc_modules.read_text(encoding="utf-8", errors="replace")
    return {line.split(maxsplit=1)[0] for line in text.splitlines() if line.strip()}


def check_nfc_kernel_modules(config: Config, proc_modules: Path = PROC_MODULES) -> CheckResult:
    """The kernel's own NFC drivers claim USB readers first, and nfcpy then finds nothing."""
    name = "nfc kernel drivers"
    if not any(r.kind == "nfc" and r.path.startswith("usb") for r in config.readers):
        return skipped(name, "no USB NFC reader configured")
    try:
        stealing = sorted(set(NFC_STEALING_MODULES) & loaded_modules(proc_modules))
    except OSError as exc:
        return warned(name, f"cannot read {proc_modules}: {exc.strerror}")
    if stealing:
        return failed(
            name,
            f"{', '.join(stealing)} loaded and will take the USB reader from nfcpy; install the pn533 "
            f"blacklist from firmware/ into /etc/modprobe.d/ and run: sudo modprobe -r {' '.join(stealing)}",
        )
    return passed(name, "none of pn533, pn533_usb, port100 is loaded")


def check_clock(synced: Callable[[], bool] = clock_synced) -> CheckResult:
    if synced():
        return passed("clock", "synchronised by NTP")
    return warned(
        "clock", "not synchronised by NTP; event times may drift: enable systemd-timesyncd or chrony with a site server"
    )


def check_gpio(config: Config, pi_model: Path = PI_MODEL) -> CheckResult:
    board = config.feedback.board
    if board == "none":
        return passed("gpio", 'board = "none": no GPIO feedback is used')
    try:
        load_board(board)
    except ConfigError as exc:
        return failed(
            "gpio", f"pin map for board {board!r} does not load: {exc}; fix feedback.board or hw/{board}.toml"
        )
    if "Raspberry Pi" not in _read(pi_model):
        return warned("gpio", f"pin map {board!r} loads, but this is not a Raspberry Pi: no pins to drive")
    if not any(importlib.util.find_spec(m) for m in ("lgpio", "RPi.GPIO")):
        return failed("gpio", "neither lgpio nor RPi.GPIO is importable; run: sudo apt install python3-lgpio")
    return passed("gpio", f"pin map {board!r} loads and a pin library is installed")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
