"""A stand-in appliance process for crash tests: commits events and publishes until killed.

`python -m tests.publisher_child PORT DATA_DIR COMMITS [PROTOCOL]` makes COMMITS commits of
one to three events each, waking the publisher after each, then keeps publishing until the
outbox is empty and exits 0, unless the test kills it first. It prints `committing` once the
first commit is made, so a test kills it at a point in its commits, not while it imports.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from handoff import db
from handoff.mqtt.publisher import PublisherSettings
from handoff.store import Store
from tests.kit.outbox import CONTEXT, checkout, in_use, mqtt_config, publisher


def main(port: int, data: Path, commits: int, protocol: str) -> int:
    store = Store(db.connect(data))
    running = publisher(
        mqtt_config(port, protocol=protocol),
        data,
        version="crash-test",
        settings=PublisherSettings(backoff_base_s=0.02, backoff_cap_s=0.1),
    )
    running.start()
    for i in range(commits):
        store.commit(in_use(f"s{i}"), [checkout(f"s{i}") for _ in range(1 + i % 3)], CONTEXT)
        running.wake()
        if i == 0:
            print("committing", flush=True)
        time.sleep(0.002)
    while store.depth():
        time.sleep(0.01)
    running.stop()
    return 0


if __name__ == "__main__":
    protocol = sys.argv[4] if len(sys.argv) > 4 else "5"
    sys.exit(main(int(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), protocol))
