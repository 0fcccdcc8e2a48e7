"""Tap to committed event with PIV card authentication, through real pcscd and vpcd.

From the reader's first command to the virtual PIV card (SELECT) to the event committed in the
outbox: certificate read, chain and date checks, a fresh ECC P-256 challenge signed by the card
and verified, directory lookup, core, SQLite commit. The baseline in the same run is the plain
UID read (GET UID) on the same reader. Target: p99 under 300 ms.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding

from bench.tap_latency import TimedStore, percentile
from handoff import db
from handoff.badge_ref import load_secret
from handoff.config import load_config
from handoff.directory import Badge, Directory
from handoff.runtime import wiring
from handoff.runtime.appliance import Stop
from handoff.sim.piv_card import PivApplet
from handoff.sim.vpcd import VirtualCard, uid_responder
from handoff.testing import pcscd
from handoff.testing.broker import Broker
from handoff.testing.config import Layout
from handoff.testing.piv_cards import PivCa

UID = bytes.fromhex("08A1B2C3")


def run(work: Path, broker: Broker, auth: str, taps: int) -> list[float]:
    ca = PivCa()
    anchors = ca.write(work / f"anchors-{auth}.pem")
    reader = {"kind": "pcsc", "name": "Virtual PCD 00 00", "auth": auth}
    if auth == "piv-cak":
        reader["trust_anchors"] = str(anchors)
    layout = Layout.create(work / auth)
    layout.configure(port=broker.port, readers=[reader], policy={"retap_guard_s": 0})
    config = load_config(layout.config)
    key, cert, card_uuid = ca.card()
    piv = auth == "piv-cak"
    responder = PivApplet(key, cert.public_bytes(Encoding.DER)).respond if piv else uid_responder(UID)
    secret = load_secret(config.appliance.badge_secret_file)
    identifier = card_uuid if piv else UID
    badges = [Badge(secret.ref(identifier), "s1", "Staff One", "RN")]
    Directory(db.connect(config.appliance.data_dir)).replace(badges)
    wiring.Store = TimedStore  # type: ignore[misc]
    parts = wiring.build(config, new_id=lambda: str(uuid.uuid4()))
    runner = threading.Thread(target=parts.run, daemon=True)
    runner.start()
    time.sleep(1.0)
    latencies = []
    for _ in range(taps):
        before = len(TimedStore.commits)
        virtual = VirtualCard(responder)
        virtual.insert("127.0.0.1", pcscd.VPCD_PORT, 0.05, 5.0)
        deadline = time.monotonic() + 5
        while len(TimedStore.commits) == before and time.monotonic() < deadline:
            time.sleep(0.001)
        if virtual.first_used_at is not None and len(TimedStore.commits) > before:
            latencies.append((TimedStore.commits[before] - virtual.first_used_at) * 1000)
        time.sleep(0.3)
    parts.appliance.submit(Stop())
    runner.join(10)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--taps", type=int, default=50)
    taps = parser.parse_args().taps
    pcscd.ensure_running()
    work = Path(tempfile.mkdtemp(prefix="handoff-piv-bench-"))
    broker = Broker(work / "broker")
    broker.start()
    try:
        piv = run(work, broker, "piv-cak", taps)
        plain = run(work, broker, "uid", taps)
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"PIV-CAK tap to committed event over {len(piv)} taps: p50 {statistics.median(piv):.1f} ms, "
        f"p99 {percentile(piv, 0.99):.1f} ms (target p99 < 300 ms)"
    )
    print(
        f"baseline, UID read on the same reader: p50 {statistics.median(plain):.1f} ms, "
        f"p99 {percentile(plain, 0.99):.1f} ms"
    )
    print(f"ratio p50 PIV-CAK / UID: {statistics.median(piv) / statistics.median(plain):.2f}")


if __name__ == "__main__":
    main()
