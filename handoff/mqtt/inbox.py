"""What other threads hand the publisher thread, and the socket its select() wakes on."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import deque


class Inbox:
    """What other threads hand the publisher thread: wake-ups, command results and the stop request.

    A wake-up is a byte on a socket pair the publisher's select() watches, so it ends the wait
    at once; a byte that does not fit means a wake-up is already pending.
    """

    def __init__(self) -> None:
        self._receiver, self._sender = socket.socketpair()
        self._receiver.setblocking(False)
        self._sender.setblocking(False)
        self._results: deque[bytes] = deque()
        self._stop = threading.Event()
        self.flush_timeout = 0.0

    def fileno(self) -> int:
        return self._receiver.fileno()

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            self._sender.send(b"\0")

    def take_wake(self) -> bool:
        """Whether a wake-up came since the last call; clears it."""
        woken = False
        try:
            while self._receiver.recv(4096):
                woken = True
        except BlockingIOError:
            pass
        return woken

    def put_result(self, payload: bytes) -> None:
        self._results.append(payload)
        self.wake()

    def take_result(self) -> bytes | None:
        return self._results.popleft() if self._results else None

    @property
    def has_results(self) -> bool:
        return bool(self._results)

    def stop(self, flush_timeout: float) -> None:
        self.flush_timeout = flush_timeout
        self._stop.set()
        self.wake()

    def stopping(self) -> bool:
        return self._stop.is_set()

    def wait_for_stop(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def close(self) -> None:
        self._receiver.close()
        self._sender.close()
