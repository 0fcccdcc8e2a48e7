"""Waiting for a condition that no message announces (a row in a database, a file's content)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(check: Callable[[], T], timeout: float = 30.0) -> T:
    """`check()` until it is truthy or `timeout` passes; its last result, for the caller to assert."""
    deadline = time.monotonic() + timeout
    while not (result := check()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return result
