"""What every reader shares: its own daemon thread, a stop flag, and health in plain words."""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from typing import ClassVar, Final

from handoff.readers.base import Emit, ReaderHealth

log = logging.getLogger("handoff.readers")

CLOSE_WAIT_S: Final = 1.0


class ReaderWorker(ABC):
    kind: ClassVar[str]

    def __init__(self, name: str) -> None:
        self.name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._health = ReaderHealth(name, self.kind, False, "not opened yet")

    def open(self, emit: Emit) -> None:
        self._thread = threading.Thread(target=self._run, args=(emit,), name=self.name, daemon=True)
        self._thread.start()

    def health(self) -> ReaderHealth:
        return self._health

    def close(self) -> None:
        self._stop.set()
        self._interrupt()
        if self._thread is not None:
            self._thread.join(CLOSE_WAIT_S)

    @abstractmethod
    def _interrupt(self) -> None:
        """Wake a worker blocked inside its driver, so close() returns promptly."""

    @abstractmethod
    def _run(self, emit: Emit) -> None: ...

    def _set_health(self, ok: bool, detail: str) -> None:
        """Log only changes, so a reader retrying every few seconds does not flood the journal."""
        if ok != self._health.ok or detail != self._health.detail:
            (log.info if ok else log.warning)("%s: %s", self.name, detail)
        self._health = ReaderHealth(self.name, self.kind, ok, detail)
