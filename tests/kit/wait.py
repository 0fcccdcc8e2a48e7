"""Waiting on state that no message announces (a database row another process writes, a pin, a
file's content): polled briefly, where a message would have been waited on."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(check: Callable[[], T], timeout: float = 30.0, every: float = 0.02) -> T:
    """`check()` until it is truthy or `timeout` passes; its last result, for the caller to assert."""
    deadline = time.monotonic() + timeout
    while not (result := check()) and time.monotonic() < deadline:
        time.sleep(every)
    return result
