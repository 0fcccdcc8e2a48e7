"""gpiozero's MockFactory as the pin factory for one test, and the previous factory back after it.

`Device.pin_factory` is process-global: a test that sets it and leaves it set changes what
every later test in the run sees.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from gpiozero import Device
from gpiozero.pins.mock import MockFactory


@contextmanager
def mock_pins() -> Iterator[MockFactory]:
    previous = Device.pin_factory
    factory = MockFactory()
    Device.pin_factory = factory
    try:
        yield factory
    finally:
        factory.reset()
        Device.pin_factory = previous
