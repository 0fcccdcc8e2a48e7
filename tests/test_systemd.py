"""sd_notify against a real unix datagram socket bound by the test, as systemd would."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from handoff.systemd import Heartbeat, Notifier


def test_messages_reach_the_notify_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        notifier = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid())})
        assert notifier.enabled and notifier.watchdog_s == 4.0
        notifier.ready("serving")
        notifier.watchdog()
        notifier.stopping()
        received = [server.recv(1024).decode() for _ in range(3)]
    assert received == ["READY=1\nSTATUS=serving", "WATCHDOG=1", "STOPPING=1"]


def test_abstract_socket(tmp_path: Path) -> None:
    name = f"handoff-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + name)
        Notifier({"NOTIFY_SOCKET": "@" + name}).status("hello")
        assert server.recv(64) == b"STATUS=hello"


def test_outside_systemd_nothing_happens() -> None:
    notifier = Notifier({})
    assert not notifier.enabled and notifier.watchdog_s is None
    notifier.ready("x")
    notifier.watchdog()


def test_watchdog_meant_for_another_process_is_ignored() -> None:
    assert Notifier({"WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}).watchdog_s is None


def test_the_heartbeat_withholds_the_ping_while_a_vital_thread_reports_a_fault(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    fault: list[str] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.settimeout(0.2)
        notifier = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "4000000"})
        heartbeat = Heartbeat(notifier, lambda: fault[0] if fault else None)
        heartbeat()
        assert server.recv(64) == b"WATCHDOG=1"
        fault.append("publisher thread failed: RuntimeError: boom")
        heartbeat()
        notifier.status("after")
        assert server.recv(64) == b"STATUS=after", "no ping was sent once a fault was reported"
