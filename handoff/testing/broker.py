"""A real mosquitto for tests: started on a free loopback port, stoppable and restartable there.

Persistence is on (in the test's directory) so subscriptions and queued messages survive a
restart, as they would on the hospital broker. `extra` lines add the listener's TLS options or an
ACL.
"""

from __future__ import annotations

import getpass
import signal
import subprocess
from pathlib import Path

from handoff.testing.net import free_tcp_port, wait_listening

MOSQUITTO = "/usr/sbin/mosquitto"


class Broker:
    def __init__(self, workdir: Path, extra: str = "", anonymous: bool = True) -> None:
        self.workdir = workdir
        self.port = free_tcp_port()
        workdir.mkdir(parents=True, exist_ok=True)
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            f"allow_anonymous {'true' if anonymous else 'false'}\n"
            "persistence true\n"
            f"persistence_location {workdir}/\n"
            "max_queued_messages 100000\n"
            "log_dest stderr\n"
            # Started as root, mosquitto drops to user `mosquitto`, which cannot write pytest's
            # private temporary directory: stay who we are so persistence actually persists.
            f"user {getpass.getuser()}\n"
            f"{extra}\n"
        )
        self.log = workdir / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=log)
        try:
            wait_listening(self._proc, self.port, self.log)
        except RuntimeError:
            self.stop()
            raise

    def reload(self) -> None:
        """SIGHUP: mosquitto rereads its ACL and password files, connections stay up."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(10)
            self._proc = None

    def __enter__(self) -> Broker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
