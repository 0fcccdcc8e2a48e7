"""`handoff run`: the appliance in the foreground, as systemd runs it."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import uuid
from types import FrameType
from typing import Any

from handoff.cli.common import add_config_option, config_from
from handoff.instance_lock import hold_instance_lock
from handoff.runtime.appliance import Stop
from handoff.runtime.wiring import build


def register(sub: Any) -> None:
    runner = sub.add_parser("run", help="run the appliance in the foreground until SIGTERM/SIGINT")
    add_config_option(runner)
    runner.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    config = config_from(args)
    _configure_logging()
    lock = hold_instance_lock(config.appliance.data_dir)
    parts = build(config, new_id=lambda: str(uuid.uuid4()))

    def stop(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger("handoff").info("%s received: stopping", signal.Signals(signum).name)
        parts.appliance.submit(Stop())

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with lock:
        parts.run()
    return 0


def _configure_logging() -> None:
    """The journal adds its own timestamps; a terminal wants them in the line."""
    under_journal = "JOURNAL_STREAM" in os.environ
    fmt = "%(levelname)s %(message)s" if under_journal else "%(asctime)s %(levelname)s %(message)s"
    logging.basicConfig(level=logging.INFO, format=fmt, stream=sys.stderr)
