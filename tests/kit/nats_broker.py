"""nats-server with its MQTT listener: MQTT 3.1.1 only, as in NATS 2.9, which some hospitals
run as their message bus. Its MQTT sessions live in JetStream, so JetStream is on, stored in
the test's directory."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.kit.net import free_tcp_port, wait_listening

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


class NatsBroker:
    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port, client_port = free_tcp_port(), free_tcp_port()
        self.conf = workdir / "nats.conf"
        self.conf.write_text(
            f'server_name: "handoff_test"\nlisten: "127.0.0.1:{client_port}"\n'
            f'jetstream {{ store_dir: "{workdir / "jetstream"}" }}\n'
            f'mqtt {{ listen: "127.0.0.1:{self.port}" }}\n'
        )
        self.log = workdir / "nats.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def installed() -> bool:
        return Path(NATS_SERVER).is_file()

    def __enter__(self) -> NatsBroker:
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen([NATS_SERVER, "-c", str(self.conf)], stdout=log, stderr=log)
        wait_listening(self._proc, self.port, self.log)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(10)
            self._proc = None
