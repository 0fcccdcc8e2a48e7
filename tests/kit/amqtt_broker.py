"""amqtt, a broker that speaks MQTT 3.1.1 only, as some hospital brokers still do.

mosquitto cannot be restricted to 3.1.1 (it accepts every version on every listener), so the
tests that need a 3.1.1-only peer start this one, from PyPI, on a free loopback port.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.kit.net import free_tcp_port, wait_listening

AMQTT = Path(sys.executable).parent / "amqtt"


class AmqttBroker:
    """`anonymous=False` admits any client that names a user (its password unchecked): amqtt
    keeps no session for an anonymous client, so a persistent session needs a user name."""

    def __init__(self, workdir: Path, anonymous: bool = True) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_tcp_port()
        self.conf = workdir / "amqtt.yaml"
        self.conf.write_text(
            f"listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:{self.port}\n"
            "plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
            f"    allow_anonymous: {'true' if anonymous else 'false'}\n"
        )
        self.log = workdir / "amqtt.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> AmqttBroker:
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen([str(AMQTT), "-c", str(self.conf)], stdout=log, stderr=log)
        wait_listening(self._proc, self.port, self.log)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(10)
            self._proc = None
