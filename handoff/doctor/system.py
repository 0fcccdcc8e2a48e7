"""Checks of the host: kernel NFC drivers, clock, GPIO board support."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Final

from handoff.clock import clock_synced
from handoff.config import Config, NfcReaderConfig
from handoff.doctor.result import CheckResult, failed, passed, skipped, warned
from handoff.errors import ConfigError
from handoff.feedback.board import load_board

NFC_STEALING_MODULES: Final = ("pn533", "pn533_usb", "port100")
PROC_MODULES: Final = Path("/proc/modules")


def loaded_modules(proc_modules: Path) -> set[str]:
    text = proc_modules.read_text(encoding="utf-8", errors="replace")
    return {line.split(maxsplit=1)[0] for line in text.splitlines() if line.strip()}


def check_nfc_kernel_modules(config: Config, proc_modules: Path = PROC_MODULES) -> CheckResult:
    """The kernel's own NFC drivers claim USB readers first, and nfcpy then finds nothing."""
    name = "nfc kernel drivers"
    if not any(isinstance(r, NfcReaderConfig) and r.path.startswith("usb") for r in config.readers):
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


def check_gpio(config: Config) -> CheckResult:
    """Fails where `handoff run` refuses to start: a pin map it cannot load or cannot drive."""
    board = config.feedback.board
    if board == "none":
        return passed("gpio", 'board = "none": no GPIO feedback is used')
    try:
        load_board(board)
    except ConfigError as exc:
        return failed(
            "gpio", f"pin map for board {board!r} does not load: {exc}; fix feedback.board or hw/{board}.toml"
        )
    from handoff.feedback.gpio import gpio_problem, gpio_unusable  # noqa: PLC0415 - gpiozero only with a board

    problem = gpio_problem()
    if problem is not None:
        return failed("gpio", f"{gpio_unusable(board, problem)}; `handoff run` refuses to start until then")
    return passed("gpio", f"pin map {board!r} loads and GPIO is usable here")
