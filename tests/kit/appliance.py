"""`handoff run` as a child process with its badge directory loaded and a subscriber attached:
the appliance end-to-end tests, the receipt, agent, audit, break-glass, ledger and console tests
drive it, and send it signed commands whose answers they wait for."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from collections.abc import Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt import publish

from handoff.audit.keys import public_pem
from handoff.commands.signing import sign_command
from handoff.provision.render import Table
from handoff.testing.child import HANDOFF, spawn_handoff, stop_child
from handoff.testing.nfc import wait_for_polling
from handoff.timefmt import rfc3339
from tests.kit.broker import Broker
from tests.kit.cli import CliRunner
from tests.kit.collector import Collector, Message
from tests.kit.config import DEVICE, PREFIX, Layout
from tests.kit.net import free_udp_port

ANA, BO = "04A1B2C3", "04A1B2C3D4E5F6"
DIRECTORY = f"uid,staff_id,name,role\n{ANA},ana,Ana Diaz,RN\n{BO},bo,Bo Chen,MD\n"
CY, STRANGER = "04C0FFEE", "04DEADBE"
"""CY's badges are revoked in the directory; STRANGER's badge is in no directory at all."""
HOLD_S = 1.0
"""The break-glass hold the tests configure: short, and long enough to tell from a tap."""
WITH_CY = (
    f"uid,staff_id,name,role,revoked\n{ANA},ana,Ana Diaz,RN,false\n{BO},bo,Bo Chen,MD,false\n{CY},cy,Cy Park,RN,true\n"
)
"""The badges most tests tap; a test that needs others (a break-glass role) passes its own CSV."""


def kinds(events: list[dict[str, Any]]) -> list[tuple[str, str | None, str | None]]:
    """Published events as (type without `org.handoff.`, staff_id, reason)."""
    return [(e["type"].removeprefix("org.handoff."), e["data"]["staff_id"], e["data"]["reason"]) for e in events]


class Running:
    """`handoff run` as a child process, with the badge directory loaded and a subscriber attached.

    Its stderr goes to `log` (a pipe could fill and stall it); `stop` returns what this run wrote.
    """

    program: Sequence[str] = HANDOFF

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
        self.log = appliance.root / "appliance.log"
        self._logged = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        """Started once it is online and its reader polls, so a tap right after is read."""
        self._logged = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            self.process = spawn_handoff("run", "-c", self.appliance.config, stderr=log, program=self.program)
        self.events.wait_for(lambda m: m.topic == f"{PREFIX}/status" and m.json().get("status") == "online")
        wait_for_polling(self.nfc)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> tuple[int, str]:
        """The exit status, and what this run wrote to stderr."""
        assert self.process is not None
        code = stop_child(self.process, sig)
        self.process = None
        with self.log.open("rb") as log:
            log.seek(self._logged)
            return code, log.read().decode(errors="replace")

    def tap(self, uid: str, hold: float = 0.2) -> None:
        """A badge on the reader for `hold` seconds: longer than the policy's hold is a break-glass."""
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
