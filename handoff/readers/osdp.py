"""An OSDP v2 reader (HID Signo, iCLASS SE) on RS-485, with libosdp as the control panel.

Secure Channel is enforced with the site key (libosdp's ENFORCE_SECURE: no fallback to plain
text nor to the default key), so a reader with another key never comes online and none of its
card reads are taken. Card reads arrive as raw Wiegand bits; `pacs` checks their parity and
decodes them, and a read that does not hold together is a bad read, never somebody else's
number. The raw bits stay in this module's locals. Like a wedge read, a card read has no
lasting presence: it is reported as an arrival and a departure at once.

libosdp declares a silent reader offline and then waits five minutes before it tries again;
this reader instead closes the port and reopens it with the usual backoff, so a reader that
was unplugged is back within seconds. Tamper and power reports from the reader, and a reader
that stops answering, show in health. The reader's LED and beeper are cue outputs (`lights`).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Final

import serial
from osdp import CardFormat, Command, ControlPanel, Event, LibFlag, LogLevel, PDInfo, StatusReportType

from handoff.feedback.osdp_lights import OsdpCommand, OsdpLights
from handoff.readers.backoff import reopen_delay
from handoff.readers.base import BadgePresented, BadgeRemoved, BadRead, Emit
from handoff.readers.pacs import BadParity, Credential, decode
from handoff.readers.serial_channel import SerialChannel
from handoff.readers.worker import ReaderWorker

ONLINE_WAIT_S: Final = 5.0
"""Secure Channel comes up in well under a second at 9600 baud; a reader silent this long is not answering."""
EVENT_WAIT_S: Final = 0.1
ALARMS: Final = (
    (0, "TAMPER: the reader reports its case open or that it was pulled off its mount"),
    (1, "POWER: the reader reports a power fault"),
)
"""Bits of an osdp_LSTATR report (libosdp gives one byte per bit: tamper, then power)."""
LOCAL_STATUS_QUERY: Final = {"command": Command.Status, "type": StatusReportType.Local}
"""osdp_LSTAT: a reader reports tamper and power when they change, so ask once for how they stand."""


def card_credential(event: dict[str, Any]) -> Credential:
    """The credential of a card-read event; BadParity, or ValueError for data that is no known format."""
    if event["format"] == CardFormat.ASCII:
        raise ValueError("the reader sent the card as ASCII text; set it to send raw Wiegand bits")
    length: int = event["length"]
    data: bytes = event["data"]
    bits = "".join(f"{byte:08b}" for byte in data)[:length]
    if len(bits) != length:
        raise ValueError(f"the reader announced {length} bits and sent {len(bits)}")
    return decode(bits)


def open_panel(port: str, address: int, baud: int, scbk: bytes, *, install: bool) -> tuple[ControlPanel, SerialChannel]:
    """A started control panel for the one reader at `address`.

    `install` drops ENFORCE_SECURE: libosdp then falls back to the default key SCBK-D and, on a
    reader that accepts it (install mode), sends osdp_KEYSET with `scbk` on its own. Only
    `handoff provision --osdp-install` asks for that.
    """
    channel = SerialChannel(port, baud)
    flags = [LibFlag.EnableNotification] + ([] if install else [LibFlag.EnforceSecure])
    panel = ControlPanel([PDInfo(address, channel, scbk=scbk, flags=flags)], log_level=LogLevel.Error)
    panel.start()
    return panel, channel


def never_online(where: str, heard: bool) -> str:
    """Why a reader did not come online, told apart by whether any byte came back."""
    if heard:
        return (
            f"the reader at {where} answers but refuses the Secure Channel with the site key (scbk_file): "
            "it holds another key, or is still in install mode; run: handoff provision --osdp-install"
        )
    return (
        f"offline: nothing answers at {where}; check the wiring (A/B swapped?), "
        "the reader's address and baud rate, and its power"
    )


def probe(port: str, address: int, baud: int, scbk: bytes, *, install: bool = False) -> str | None:
    """Bring the reader online once (with `install`, giving it `scbk` first); None if it did, else why not.

    Raises SerialException or OSError when the port itself cannot be opened.
    """
    panel, channel = open_panel(port, address, baud, scbk, install=install)
    try:
        deadline = time.monotonic() + ONLINE_WAIT_S
        while time.monotonic() < deadline:
            if panel.is_online(address) and panel.is_sc_active(address):
                return None
            time.sleep(EVENT_WAIT_S)
        return never_online(f"address {address} on {port} at {baud} baud", channel.heard)
    finally:
        panel.teardown()
        channel.close()


def install_site_key(port: str, address: int, baud: int, scbk: bytes) -> str | None:
    """Give a reader in install mode the site key (osdp_KEYSET on SCBK-D), then check it takes it.

    None when the reader now opens a Secure Channel with `scbk` alone; else why not.
    """
    first = probe(port, address, baud, scbk, install=True)
    if first is None:
        return probe(port, address, baud, scbk)
    if "refuses" in first:
        return (
            "the reader refuses both the site key and the default key: it holds another key; put it back "
            "in install mode with its maker's tool (HID: a configuration card) and run this again"
        )
    return first


class OsdpReader(ReaderWorker):
    kind = "osdp"

    def __init__(self, port: str, address: int, baud: int, scbk: bytes) -> None:
        super().__init__(f"osdp:{port}:{address}")
        self.port, self.address, self.baud = port, address, baud
        self._scbk = scbk
        self._panel: ControlPanel | None = None
        self._panel_lock = threading.Lock()
        self._alarms: dict[int, bool] = {}
        self.lights = OsdpLights(self.submit)

    def submit(self, command: OsdpCommand) -> bool:
        """Queue one command for the reader; False while it is not online (the lights send again later)."""
        with self._panel_lock:
            panel = self._panel
            if panel is None or not panel.is_online(self.address):
                return False
            return bool(panel.submit_command(self.address, command))

    def _interrupt(self) -> None:
        """The serve loop wakes every EVENT_WAIT_S to look at the stop flag."""

    def _run(self, emit: Emit) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                panel, channel = open_panel(self.port, self.address, self.baud, self._scbk, install=False)
            except (serial.SerialException, OSError) as exc:
                failures += 1
                self._set_health(False, f"cannot open {self.port}: {exc}; check the RS-485 adapter is plugged in")
                self._stop.wait(reopen_delay(failures))
                continue
            with self._panel_lock:
                self._panel = panel
            try:
                failures = 0 if self._serve(panel, channel, emit) else failures + 1
            finally:
                with self._panel_lock:
                    self._panel = None
                panel.teardown()
                channel.close()
            self._stop.wait(reopen_delay(max(1, failures)))

    def _serve(self, panel: ControlPanel, channel: SerialChannel, emit: Emit) -> bool:
        """Until the reader goes silent or close(); False if it never came online."""
        where = f"address {self.address} on {self.port} at {self.baud} baud"
        started, online = time.monotonic(), False
        while not self._stop.is_set():
            event = panel.get_event(self.address, timeout=EVENT_WAIT_S)
            if event is not None:
                self._event(event, emit)
            if channel.lost is not None:
                self._set_health(False, f"{self.port} failed ({channel.lost}): is the RS-485 adapter unplugged?")
                return online
            now_online = panel.is_online(self.address)
            if now_online and not online:
                online = True
                self._alarms.clear()
                self.submit(LOCAL_STATUS_QUERY)
                self.lights.resend()
            elif online and not now_online:
                self._set_health(False, f"offline: the reader at {where} stopped answering; reconnecting")
                return True
            elif not online and time.monotonic() - started > ONLINE_WAIT_S:
                self._set_health(False, never_online(where, channel.heard))
                return False
            if online:
                self._report(where)
        return online

    def _report(self, where: str) -> None:
        raised = [text for bit, text in ALARMS if self._alarms.get(bit)]
        self._set_health(not raised, "; ".join([*raised, f"secure channel up with the reader at {where}"]))

    def _event(self, event: dict[str, Any], emit: Emit) -> None:
        if event["event"] == Event.CardRead:
            self._card(event, emit)
        elif event["event"] == Event.Status and event["type"] == StatusReportType.Local:
            report: bytes = event["report"]
            self._alarms = {bit: bool(report[bit]) for bit, _ in ALARMS if bit < len(report)}

    def _card(self, event: dict[str, Any], emit: Emit) -> None:
        now = time.monotonic()
        try:
            credential = card_credential(event)
        except BadParity as exc:
            emit(BadRead(self.name, "unreadable", f"card read refused: {exc} (a misread)", now))
            return
        except ValueError as exc:
            emit(BadRead(self.name, "unreadable", f"card read refused: {exc}", now))
            return
        emit(BadgePresented(self.name, credential.badge_bytes, "pacs", now))
        emit(BadgeRemoved(self.name, credential.badge_bytes, now))
