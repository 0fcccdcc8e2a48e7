"""`handoff ledger run`: the MQTT session is started first, and the database layer loaded while it
connects.

Loading SQLAlchemy, psycopg and the ingest modules is most of the command's start (about half a
second here), and a ledger is started most often with a backlog waiting at the broker (after a
restart or an outage): the session process takes messages in on the other core meanwhile, up to
what it may hold unacknowledged (bench/README.md).
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from types import FrameType

from handoff.ledger.config import load_ledger_config, resolve_ledger_config_path
from handoff.ledger.keys import ledger_keys
from handoff.ledger.receiver import RECEIVE_MAXIMUM, Receiver, subscriptions
from handoff.logs import configure_logging

log = logging.getLogger("handoff.ledger")


def run(args: argparse.Namespace) -> int:
    config = load_ledger_config(resolve_ledger_config_path(args.config))
    configure_logging()
    if config.ledger.allow_untrusted:
        log.warning("ledger.allow_untrusted is on: every message is believed, signed or not (a lab bench only)")
    stopping = threading.Event()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        """Only sets the flag the loop polls: a handler may interrupt the main thread anywhere."""
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    keys = ledger_keys(config)
    receiver = Receiver(config.mqtt, subscriptions(config.mqtt), RECEIVE_MAXIMUM, stopping)
    receiver.start()
    try:
        from handoff.ledger.consumer import Consumer
        from handoff.ledger.database import engine_for

        Consumer(config, engine_for(config.ledger.database), keys, receiver, stopping).run()
    finally:
        stopping.set()
        receiver.stop()
    return 0
