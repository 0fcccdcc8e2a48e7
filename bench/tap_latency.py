"""Tap to committed event: from the simulated badge's activation to the event in the outbox.

The whole running path is measured in one process: nfcpy's UDP frontend, the reader thread,
the appliance loop (directory lookup, core, SQLite commit with synchronous=FULL). The
baseline, measured in the same run, is the reader alone: activation to the reader's report.
Target: p99 under 50 ms.

What the hash chain costs the tap path is measured two ways in the same run. In place: the
CPU time the loop thread spends sealing each tap's events (the canonical encoding, both hashes
and the link; CPU time, so that another thread or process running meanwhile is not counted),
less the CPU time of the plain encoding it replaced, timed the same way on the other taps,
against the tap's whole latency. And end to end, by storing plain compact JSON for every other
pair of taps, as before the chain, against the same comparison between two halves of the
unchained taps, which shows how much two p99s of a few hundred taps differ when nothing differs
at all. Goal: the chain costs under 5 % of the p99.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from bench.chain_cost import percentile, unchained_sealed
from handoff import db, store
from handoff.badge_ref import load_secret
from handoff.config import load_config
from handoff.directory import Directory, read_csv
from handoff.readers.base import BadgePresented
from handoff.runtime import wiring
from handoff.runtime.appliance import Stop
from handoff.sim.nfc_badge import NfcBadge
from handoff.store import Store
from handoff.testing.broker import Broker
from handoff.testing.config import Layout
from handoff.testing.net import free_udp_port

BADGES = ("08A1B2C3", "08D4E5F6")
"""Random-ID UIDs (0x08): an NXP prefix would add nfcpy's product probing to every tap."""


class TimedStore(Store):
    """The real store, noting when each commit returned and how long its chain work took."""

    commits: ClassVar[list[float]] = []
    chain_time: ClassVar[list[float]] = []
    _spent: ClassVar[float] = 0.0

    def commit(self, *args: Any, **kwargs: Any) -> Any:
        TimedStore._spent = 0.0
        result = super().commit(*args, **kwargs)
        TimedStore.commits.append(time.monotonic())
        TimedStore.chain_time.append(TimedStore._spent)
        return result

    @staticmethod
    def timed(function: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any) -> Any:
            start = time.thread_time()
            try:
                return function(*args)
            finally:
                TimedStore._spent += time.thread_time() - start

        return run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--taps", type=int, default=200)
    taps = parser.parse_args().taps
    work = Path(tempfile.mkdtemp(prefix="handoff-bench-"))
    broker = Broker(work / "broker")
    broker.start()
    port = free_udp_port()
    config_path = Layout.create(work).configure(
        port=broker.port, readers=[{"kind": "nfc", "path": f"udp:127.0.0.1:{port}"}], policy={"retap_guard_s": 0}
    )
    csv = work / "badges.csv"
    csv.write_text("uid,staff_id,name,role\n" + "".join(f"{uid},s{i},Staff {i},RN\n" for i, uid in enumerate(BADGES)))
    config = load_config(config_path)
    Directory(db.connect(config.appliance.data_dir)).replace(
        read_csv(csv, load_secret(config.appliance.badge_secret_file))
    )

    wiring.Store = TimedStore  # type: ignore[misc]
    parts = wiring.build(config, new_id=lambda: str(uuid.uuid4()))
    presented: list[float] = []
    submit = parts.appliance.submit

    def observe(event: Any) -> None:
        if isinstance(event, BadgePresented):
            presented.append(event.at)
        submit(event)

    parts.appliance.submit = observe  # type: ignore[method-assign]
    runner = threading.Thread(target=parts.run, daemon=True)
    runner.start()
    time.sleep(1.0)
    to_commit: list[float] = []
    to_report: list[float] = []
    unchained: list[float] = []
    in_chain: list[float] = []
    plain: list[float] = []
    chained_sealed, plain_sealed = TimedStore.timed(store.sealed), TimedStore.timed(unchained_sealed)
    for index in range(2 * taps):
        chained = index % 4 < 2
        store.sealed = chained_sealed if chained else plain_sealed
        commits_before, presented_before = len(TimedStore.commits), len(presented)
        badge = NfcBadge(bytes.fromhex(BADGES[index % 2]), "127.0.0.1", port)
        activated_at = badge.present(0.05, 5.0).activated_at
        deadline = time.monotonic() + 5
        while len(TimedStore.commits) == commits_before and time.monotonic() < deadline:
            time.sleep(0.001)
        if activated_at is not None and len(TimedStore.commits) > commits_before:
            took = (TimedStore.commits[commits_before] - activated_at) * 1000
            sealing = TimedStore.chain_time[commits_before] * 1000
            if chained:
                to_commit.append(took)
                in_chain.append(sealing)
                to_report.append((presented[presented_before] - activated_at) * 1000)
            else:
                unchained.append(took)
                plain.append(sealing)
        time.sleep(0.5)
    parts.appliance.submit(Stop())
    runner.join(10)
    broker.stop()
    shutil.rmtree(work, ignore_errors=True)
    print(
        f"tap to committed event over {len(to_commit)} taps: p50 {statistics.median(to_commit):.1f} ms, "
        f"p99 {percentile(to_commit, 0.99):.1f} ms (target p99 < 50 ms)"
    )
    print(
        f"baseline, reader alone (activation to report): p50 {statistics.median(to_report):.1f} ms, "
        f"p99 {percentile(to_report, 0.99):.1f} ms"
    )
    print(f"ratio p50 appliance / reader alone: {statistics.median(to_commit) / statistics.median(to_report):.2f}")
    p99_on, p99_off = percentile(to_commit, 0.99), percentile(unchained, 0.99)
    p50_on, p50_off = statistics.median(to_commit), statistics.median(unchained)
    p99_a, p99_b = percentile(unchained[0::2], 0.99), percentile(unchained[1::2], 0.99)
    own = {share: percentile(in_chain, share) - percentile(plain, share) for share in (0.5, 0.9, 0.99)}
    print(
        f"in place, CPU per tap: sealing with the chain p50 {statistics.median(in_chain) * 1000:.0f} us, "
        f"p99 {percentile(in_chain, 0.99) * 1000:.0f} us; the plain encoding it replaced "
        f"p50 {statistics.median(plain) * 1000:.0f} us, p99 {percentile(plain, 0.99) * 1000:.0f} us; "
        f"the chain's own cost at the p50 {own[0.5] * 1000:.0f} us, p90 {own[0.9] * 1000:.0f} us, "
        f"p99 {own[0.99] * 1000:.0f} us, which is {own[0.99] / p99_on * 100:.2f} % of the tap's p99 "
        f"(the whole sealing: {percentile(in_chain, 0.99) / p99_on * 100:.2f} %; goal under 5 %)"
    )
    print(
        f"same path without the chain over {len(unchained)} taps: p50 {p50_off:.2f} ms, p99 {p99_off:.2f} ms; "
        f"p99 with / without {p99_on / p99_off:.3f}, p50 {p50_on / p50_off:.3f}; "
        f"noise floor, p99 of one half of the unchained taps / the other: {p99_a / p99_b:.3f}"
    )
    if len(to_commit) + len(unchained) < 2 * taps:
        missed = 2 * taps - len(to_commit) - len(unchained)
        print(f"note: {missed} taps were not activated or not committed", file=sys.stderr)


if __name__ == "__main__":
    main()
