"""kill -9 at random points, over many rounds: every committed event still arrives, in order."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from handoff import db
from tests.kit.broker import Broker
from tests.kit.cli import handoff_env
from tests.kit.collector import Collector
from tests.kit.config import PREFIX

ROUNDS = 14


def spawn(port: int, data: Path, commits: int, protocol: str = "5") -> subprocess.Popen[bytes]:
    env = handoff_env()
    command = [sys.executable, "-m", "tests.publisher_child", str(port), str(data), str(commits), protocol]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_kill_nine_at_random_points_loses_nothing(tmp_path: Path, rng: random.Random) -> None:
    data = tmp_path / "data"
    with Broker(tmp_path / "broker") as broker:
        events = Collector(broker.port, f"{PREFIX}/events/#")
        try:
            for round_ in range(ROUNDS):
                offline = round_ % 4 == 1
                if offline:
                    broker.stop()
                child = spawn(broker.port, data, commits=200, protocol="3.1.1" if round_ % 3 == 2 else "5")
                assert child.stdout is not None and child.stdout.readline() == b"committing\n"
                time.sleep(rng.uniform(0.0, 0.7))  # a random point in its commits and publishes
                child.send_signal(signal.SIGKILL)
                child.communicate()
                if offline:
                    broker.start()
            final = spawn(broker.port, data, commits=0)
            _, stderr = final.communicate(timeout=60)
            assert final.returncode == 0, stderr.decode()
            conn = db.connect(data)
            last_seq = conn.execute("SELECT last_seq FROM appliance_state").fetchone()[0]
            got = events.wait_until(lambda got: len({json.loads(m.payload)["id"] for m in got}) >= last_seq)
        finally:
            events.close()
    assert last_seq > ROUNDS, "the children were killed before committing anything"
    first_id: dict[int, str] = {}
    order: list[int] = []
    for message in got:
        body = json.loads(message.payload)
        seq = body["data"]["seq"]
        assert first_id.setdefault(seq, body["id"]) == body["id"], f"seq {seq} sent under two ids"
        if seq not in order:
            order.append(seq)
    assert sorted(order) == list(range(1, last_seq + 1)), "a committed event never arrived"
    assert order == sorted(order), "first deliveries out of seq order"
    unsent = conn.execute("SELECT count(*) FROM outbox WHERE acked IS NULL").fetchone()[0]
    assert unsent == 0


def test_last_will_says_offline_after_kill_nine(tmp_path: Path) -> None:
    with Broker(tmp_path / "broker") as broker:
        status = Collector(broker.port, f"{PREFIX}/status")
        child = spawn(broker.port, tmp_path / "data", commits=10**6)
        try:
            got = status.wait_until(lambda got: any(json.loads(m.payload)["status"] == "online" for m in got))
            assert got, "the child never said online"
            child.send_signal(signal.SIGKILL)
            child.wait()
            got = status.wait_until(lambda got: json.loads(got[-1].payload)["status"] == "offline")
            will = json.loads(got[-1].payload)
            assert (will["status"], will["version"], "signature" in will) == ("offline", "crash-test", False), will
            assert "time" in will, will
        finally:
            child.kill()
            status.close()
        late = Collector(broker.port, f"{PREFIX}/status")
        retained = late.wait_until(bool)
        late.close()
    assert retained[-1].retain and json.loads(retained[-1].payload)["status"] == "offline"
