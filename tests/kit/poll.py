"""Waiting on state that sends no message (a database row another process writes): polled briefly."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def until(check: Callable[[], T], timeout: float = 10.0, every: float = 0.02) -> T | None:
    """The first truthy value `check` returns within `timeout`, else None: the caller asserts."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() >= deadline:
            return value or None
        time.sleep(every)
