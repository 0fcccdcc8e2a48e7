"""NFC badges through nfcpy: any nfcpy path (usb, usb:VID:PID, tty:AMA0:pn532, udp:HOST:PORT).

`clf.connect` with an `on-connect` that returns True blocks while the badge stays in the field
and returns after `on-release`: a natural presence edge, so a badge resting on the reader is
reported once. nfcpy's own beep-on-connect is off: only the appliance may signal "accepted",
and only after the event is committed.
"""

from __future__ import annotations

import time
from typing import Any, Final

import nfc
import nfc.clf

from handoff.readers.backoff import reopen_delay
from handoff.readers.base import BadgePresented, BadgeRemoved, Emit
from handoff.readers.worker import ReaderWorker

TARGETS: Final = ("106A", "106B", "212F")
SIMULATED_TARGETS: Final = ("106A",)
"""nfcpy's UDP frontend waits a full second per technology for an answer, and the simulated
badges are 14443-A: sensing only that keeps a simulated tap as quick as a real one."""
TECHNOLOGY: Final = {"A": "iso14443a", "B": "iso14443b", "F": "felica"}


class NfcReader(ReaderWorker):
    kind = "nfc"

    def __init__(self, path: str) -> None:
        super().__init__(f"nfc:{path}")
        self.path = path

    def _interrupt(self) -> None:
        """Nothing to cancel: nfcpy checks `terminate` at the end of its current sense cycle."""

    def _run(self, emit: Emit) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                frontend = nfc.ContactlessFrontend(self.path)
            except (OSError, ValueError) as exc:
                failures += 1
                self._set_health(False, f"cannot open NFC reader {self.path}: {_plain(exc)}; retrying")
                self._stop.wait(reopen_delay(failures))
                continue
            failures = 0
            self._set_health(True, f"open ({frontend.device})")
            try:
                self._serve(frontend, emit)
            except Exception as exc:
                failures += 1
                self._set_health(False, f"NFC reader {self.path} failed: {_plain(exc)}; reopening")
                self._stop.wait(reopen_delay(failures))
            finally:
                frontend.close()

    def _serve(self, frontend: Any, emit: Emit) -> None:
        def on_connect(tag: Any) -> bool:
            identifier = bytes(tag.identifier)
            technology = TECHNOLOGY.get(str(tag.target.brty)[-1], "iso14443a")
            emit(BadgePresented(self.name, identifier, technology, time.monotonic()))
            presented[0] = identifier
            return True

        def on_release(_tag: Any) -> bool:
            if presented[0] is not None:
                emit(BadgeRemoved(self.name, presented[0], time.monotonic()))
                presented[0] = None
            return True

        presented: list[bytes | None] = [None]
        options = {
            "targets": SIMULATED_TARGETS if self.path.startswith("udp") else TARGETS,
            "on-connect": on_connect,
            "on-release": on_release,
            "beep-on-connect": False,
            "iterations": 1,
            "interval": 0.1,
        }
        while not self._stop.is_set():
            result = frontend.connect(rdwr=options, terminate=self._stop.is_set)
            if result is False:
                raise OSError("the reader stopped answering")


def _plain(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
