"""`handoff run` as a child process, as the end-to-end tests drive it: config, badges, a subscriber."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt import publish

from handoff.audit.keys import public_pem
from handoff.commands.signing import sign_command
from handoff.provision.render import Table
from handoff.timefmt import rfc3339
from tests.kit.broker import Broker
from tests.kit.cli import CliRunner, handoff_env
from tests.kit.collector import Collector, Message
from tests.kit.config import DEVICE, PREFIX, Layout
from tests.kit.net import free_udp_port

ANA, BO = "04A1B2C3", "04A1B2C3D4E5F6"
DIRECTORY = f"uid,staff_id,name,role\n{ANA},ana,Ana Diaz,RN\n{BO},bo,Bo Chen,MD\n"


class Running:
    """`handoff run` as a child process, with the badge directory loaded and a subscriber attached."""

    interpreter: tuple[str, ...] = (sys.executable, "-m", "handoff")

    def __init__(
        self,
        appliance: Layout,
        broker: Broker,
        cli: CliRunner,
        policy: Table,
        audit: Table | None = None,
        agent: Table | None = None,
        directory: str = DIRECTORY,
    ) -> None:
        self.nfc = f"udp:127.0.0.1:{free_udp_port()}"
        self.broker_port = broker.port
        self.appliance, self.cli = appliance, cli
        self.command_key = Ed25519PrivateKey.generate()
        self.retiring_key = Ed25519PrivateKey.generate()
        """Also in commands.pem, as during a key rotation: the site's old key, still accepted."""
        public = appliance.root / "commands.pem"
        public.write_bytes(public_pem(self.retiring_key) + public_pem(self.command_key))
        appliance.configure(
            port=broker.port,
            appliance={"command_key_file": str(public)},
            policy=policy,
            readers=[{"kind": "nfc", "path": self.nfc}],
            audit=audit,
            agent=agent,
        )
        csv = appliance.root / "badges.csv"
        csv.write_text(directory)
        assert cli("badges", "import", csv, "-c", appliance.config).returncode == 0
        self.events = Collector(broker.port, f"{PREFIX}/#")
        self.process: subprocess.Popen[str] | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            [*self.interpreter, "run", "-c", str(self.appliance.config)],
            env=handoff_env(),
            text=True,
            stderr=subprocess.PIPE,
        )
        self.events.wait_for(lambda m: m.topic == f"{PREFIX}/status" and m.json().get("status") == "online")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> tuple[int, str]:
        assert self.process is not None
        self.process.send_signal(sig)
        code = self.process.wait(timeout=5)
        log = self.process.stderr.read() if self.process.stderr else ""
        self.process = None
        return code, log

    def tap(self, uid: str, hold: float = 0.2) -> None:
        result = self.cli("sim", "tap", uid, "--device", self.nfc, "--hold", str(hold))
        assert result.returncode == 0, result.stderr

    def event_types(self, count: int) -> list[tuple[str, str | None, str | None]]:
        events = self.events.wait_for_count(lambda m: "/events/" in m.topic, count)
        return [(e["type"], e["data"]["staff_id"], e["data"]["reason"]) for e in (m.json() for m in events)]

    def command(self, name: str, raw: bytes | None = None, **fields: object) -> tuple[bytes, dict[str, Any]]:
        """Publish a command signed with the site key (or `raw` as it is) and wait for its answer."""
        if raw is None:
            body = {"id": str(uuid.uuid4()), "issued_at": rfc3339(time.time()), **fields}
            raw = json.dumps(sign_command(self.command_key, DEVICE, name, body)).encode()
        command_id = json.loads(raw)["id"]

        def answer(message: Message) -> bool:
            return message.topic == f"{PREFIX}/cmd_result" and message.json()["id"] == command_id

        seen = sum(map(answer, self.events.snapshot()))
        publish.single(f"{PREFIX}/cmd/{name}", raw, qos=1, hostname="127.0.0.1", port=self.broker_port)
        result: dict[str, Any] = self.events.wait_for_count(answer, seen + 1)[-1].json()
        return raw, result
