"""Reconnect delays: capped exponential with jitter, so a ward of carts does not reconnect in step."""

from __future__ import annotations

from collections.abc import Callable


def backoff_delay(attempt: int, base: float, cap: float, rand: Callable[[], float]) -> float:
    """ "Equal jitter": half the capped exponential delay, plus a random share of the other half."""
    ceiling = min(cap, base * 2.0 ** min(attempt, 32))
    return ceiling / 2 + rand() * ceiling / 2
