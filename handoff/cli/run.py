"""`handoff run`: the appliance in the foreground, as systemd runs it."""

from __future__ import annotations

import argparse
import signal
import time
from collections.abc import Callable
from types import FrameType

from handoff.cli.common import add_config_option, config_from
from handoff.cloudevents import uuid7
from handoff.instance_lock import hold_instance_lock
from handoff.logs import configure_logging
from handoff.runtime.appliance import Stop
from handoff.runtime.wiring import build


def register(runner: argparse.ArgumentParser) -> None:
    add_config_option(runner)
    runner.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    stops = _StopSignals()
    config = config_from(args)
    configure_logging()
    lock = hold_instance_lock(config.appliance.data_dir)
    parts = build(config, new_id=lambda: uuid7(time.time()))
    stops.deliver_to(parts.appliance.submit)
    with lock:
        parts.run()
    return 0


class _StopSignals:
    """SIGTERM and SIGINT become a `Stop` in the loop's inbox, from the first line of `run` on.

    A handler may interrupt the main thread anywhere, even inside a lock or a write to stderr,
    so it only puts on the loop's SimpleQueue (reentrant) or appends to a list, and logs
    nothing: the loop logs the Stop. A signal that comes while the appliance is still being
    built waits in `early` and is delivered as soon as there is an inbox.
    """

    def __init__(self) -> None:
        self._early: list[Stop] = []
        self._submit: Callable[[Stop], None] | None = None
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def deliver_to(self, submit: Callable[[Stop], None]) -> None:
        self._submit = submit
        while self._early:
            submit(self._early.pop(0))

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        stop = Stop(f"{signal.Signals(signum).name} received")
        if self._submit is None:
            self._early.append(stop)
        else:
            self._submit(stop)
