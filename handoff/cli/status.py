"""`handoff status`: what biomed needs at the cart, read from the database the runtime writes."""

from __future__ import annotations

import argparse
import time

from handoff.audit.keys import load_signing_key
from handoff.audit.signature import fingerprint
from handoff.cli.common import add_config_option, config_from, open_database
from handoff.config import Config
from handoff.disk import disk_state
from handoff.errors import ConfigError
from handoff.store import Store
from handoff.timefmt import rfc3339


def register(status: argparse.ArgumentParser) -> None:
    add_config_option(status)
    status.set_defaults(func=_status)


def _status(args: argparse.Namespace) -> int:
    config = config_from(args)
    store = Store(open_database(config))
    now = time.time()
    retained = store.retained_state()
    print(f"state: {retained['state'] if retained else 'available (never used)'}")
    print(f"holder: {(retained or {}).get('staff_id') or '-'}")
    print(f"last seq: {retained['seq'] if retained else 0}")
    oldest = store.oldest_unsent_created()
    age = f", oldest unsent {now - oldest:.0f} s old" if oldest is not None else ""
    print(f"outbox: {store.depth()} unsent{age}")
    blocked = store.blocked()
    if blocked is not None:
        print(f"WARNING {blocked.describe()} since {rfc3339(blocked.since)}; later events wait behind it")
    fault = store.fault()
    if fault is not None:
        print(f"WARNING {fault}; nothing is published until the appliance restarts")
    for topic, refused in sorted(store.refused().items()):
        print(f"WARNING broker refused publishes on {refused.describe(topic)} at {rfc3339(refused.at)}")
    rewind = store.rewind()
    if rewind is not None:
        print(f"WARNING {rewind.describe()} at {rfc3339(rewind.at)}; see docs/integration.md")
    link = store.link()
    if link is None:
        print("broker: never contacted")
    else:
        word = "connected" if link.connected else "disconnected"
        error = f" (last error: {link.last_error})" if link.last_error else ""
        print(f"broker: {word} since {rfc3339(link.since)}{error}")
    disk = disk_state(config.appliance.data_dir)
    print(f"disk: {disk.free_bytes // (1024 * 1024)} MiB free{' (LOW)' if disk.low else ''}")
    print(f"appliance key: {_key_line(config)}")
    readers = link.readers if link else []
    if not readers:
        print("readers: none reported")
    for reader in readers:
        print("reader: " + ", ".join(f"{key}={value}" for key, value in reader.items()))
    return 0


def _key_line(config: Config) -> str:
    """The fingerprint biomed compares with the console's when enrolling; a key that cannot be
    used is said here rather than hiding the rest of the status."""
    if config.audit is None:
        return "none (no [audit]: nothing this cart publishes is signed, so no ledger believes it)"
    try:
        key = load_signing_key(config.audit.key_file)
    except ConfigError as exc:
        return f"UNUSABLE: {exc}"
    return f"fingerprint {fingerprint(key)}"
