"""What signing every event costs the tap: tap to committed event, p99, with signatures and without.

The real appliance (nfcpy's UDP frontend, the reader thread, the loop, the SQLite commit with
synchronous=FULL, the publisher connected to mosquitto) runs with `[audit]`; it signs the events
of every other pair of taps and leaves the pairs between unsigned, so both halves share the same
minutes of a shared machine. Events are signed once the cue is given (`Store.sign`), so what this
shows is whether that work is felt by a tap's commit at all. The noise floor is the p99 of one
half of the unsigned taps against the other: two p99s of a few hundred taps differ by that much
when nothing differs at all. The CPU time the signing takes after each cue (Ed25519 and the
re-encoding of a handoff's events, and the write of the signed rows) is printed beside it.
Goal: p99 with / without <= 1.05.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, ClassVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.chain_cost import percentile
from handoff import db
from handoff.badge_ref import load_secret
from handoff.config import load_config
from handoff.directory import Directory, read_csv
from handoff.outbox import StoredEvent
from handoff.runtime import wiring
from handoff.runtime.appliance import Stop
from handoff.sim.nfc_badge import NfcBadge
from handoff.store import Store
from handoff.testing.broker import Broker
from handoff.testing.config import Layout
from handoff.testing.keys import write_audit_key
from handoff.testing.net import free_udp_port

BADGES = ("08A1B2C3", "08D4E5F6")
"""Random-ID UIDs (0x08): an NXP prefix would add nfcpy's product probing to every tap."""


class SwitchedStore(Store):
    """The real store, signing only while `signing` is set, noting when each commit returned
    and the CPU time each signing after the cue took."""

    signing: ClassVar[bool] = True
    commits: ClassVar[list[float]] = []
    signing_time: ClassVar[list[float]] = []
    signing_wall: ClassVar[list[float]] = []
    _audit_key: ClassVar[Ed25519PrivateKey | None] = None

    @property  # type: ignore[override]
    def _key(self) -> Ed25519PrivateKey | None:
        return SwitchedStore._audit_key if SwitchedStore.signing else None

    @_key.setter
    def _key(self, key: Ed25519PrivateKey | None) -> None:
        SwitchedStore._audit_key = key

    def commit(self, *args: Any, **kwargs: Any) -> Any:
        result = super().commit(*args, **kwargs)
        SwitchedStore.commits.append(time.monotonic())
        return result

    def sign(self, stored: list[StoredEvent]) -> None:
        start, start_wall = time.thread_time(), time.perf_counter()
        super().sign(stored)
        if SwitchedStore.signing and stored:
            SwitchedStore.signing_time.append(time.thread_time() - start)
            SwitchedStore.signing_wall.append(time.perf_counter() - start_wall)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--taps", type=int, default=200, help="taps with signatures (as many without)")
    taps = parser.parse_args().taps
    work = Path(tempfile.mkdtemp(prefix="handoff-bench-sign-"))
    broker = Broker(work / "broker")
    broker.start()
    port = free_udp_port()
    audit_key, _ = write_audit_key(work)
    config_path = Layout.create(work).configure(
        port=broker.port,
        readers=[{"kind": "nfc", "path": f"udp:127.0.0.1:{port}"}],
        policy={"retap_guard_s": 0},
        audit={"key_file": str(audit_key), "checkpoint_every": 100000, "checkpoint_s": 86400},
    )
    csv = work / "badges.csv"
    csv.write_text("uid,staff_id,name,role\n" + "".join(f"{uid},s{i},Staff {i},RN\n" for i, uid in enumerate(BADGES)))
    config = load_config(config_path)
    Directory(db.connect(config.appliance.data_dir)).replace(
        read_csv(csv, load_secret(config.appliance.badge_secret_file))
    )
    wiring.Store = SwitchedStore  # type: ignore[misc]
    parts = wiring.build(config, new_id=lambda: str(uuid.uuid4()))
    runner = threading.Thread(target=parts.run, daemon=True)
    runner.start()
    time.sleep(1.0)
    signed: list[float] = []
    unsigned: list[float] = []
    for index in range(2 * taps):
        SwitchedStore.signing = index % 4 < 2
        before = len(SwitchedStore.commits)
        activated_at = NfcBadge(bytes.fromhex(BADGES[index % 2]), "127.0.0.1", port).present(0.05, 5.0).activated_at
        deadline = time.monotonic() + 5
        while len(SwitchedStore.commits) == before and time.monotonic() < deadline:
            time.sleep(0.001)
        if activated_at is not None and len(SwitchedStore.commits) > before:
            took = (SwitchedStore.commits[before] - activated_at) * 1000
            if SwitchedStore.signing:
                signed.append(took)
            else:
                unsigned.append(took)
        time.sleep(0.5)
    parts.appliance.submit(Stop())
    runner.join(10)
    broker.stop()
    shutil.rmtree(work, ignore_errors=True)
    cpu = [spent * 1000 for spent in SwitchedStore.signing_time]
    wall = [spent * 1000 for spent in SwitchedStore.signing_wall]
    p99_on, p99_off = percentile(signed, 0.99), percentile(unsigned, 0.99)
    p99_a, p99_b = percentile(unsigned[0::2], 0.99), percentile(unsigned[1::2], 0.99)
    print(
        f"tap to committed event, signed, over {len(signed)} taps: p50 {statistics.median(signed):.2f} ms, "
        f"p99 {p99_on:.2f} ms"
    )
    print(
        f"baseline, same appliance unsigned on alternate pairs of taps, over {len(unsigned)} taps: "
        f"p50 {statistics.median(unsigned):.2f} ms, p99 {p99_off:.2f} ms"
    )
    print(
        f"ratio p99 signed / unsigned: {p99_on / p99_off:.3f} (goal <= 1.05); "
        f"p50 {statistics.median(signed) / statistics.median(unsigned):.3f}; "
        f"noise floor, p99 of one half of the unsigned taps / the other: {p99_a / p99_b:.3f}"
    )
    print(
        f"after the cue, CPU per commit spent signing its events and writing them, over "
        f"{len(cpu)} commits: p50 {statistics.median(cpu) * 1000:.0f} us, p99 {percentile(cpu, 0.99) * 1000:.0f} us; "
        f"wall time in the same calls p50 {statistics.median(wall) * 1000:.0f} us, "
        f"p99 {percentile(wall, 0.99) * 1000:.0f} us"
    )
    if len(signed) + len(unsigned) < 2 * taps:
        print(
            f"note: {2 * taps - len(signed) - len(unsigned)} taps were not activated or not committed", file=sys.stderr
        )


if __name__ == "__main__":
    main()
