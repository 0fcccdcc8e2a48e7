"""Simulated appliances for the ledger's benchmarks, demos and tests.

Each one is a small MQTT client with the appliance's last will that publishes what an
appliance would: valid, chained CloudEvents with their seq, the retained state and status, and a
checkpoint, all signed with its own Ed25519 key as an appliance signs them, so that a ledger
believes them once the key is enrolled (`simulated` keeps the keys where enrolment reads them).
It is not N appliances: no readers, no SQLite outbox, no state machine, no retries; the badge
traffic is a plain rotation of checkouts and checkins. Each client runs paho's own network
thread, which suits up to a few hundred of them.
"""

from __future__ import annotations

import itertools
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.client import MQTTMessageInfo

from handoff import compact_json
from handoff.audit.chain import canonical, genesis, sealed
from handoff.audit.checkpoint import make_checkpoint
from handoff.audit.keys import load_signing_key, private_pem, public_pem
from handoff.audit.signature import event_signature, public_key_b64, signature
from handoff.cloudevents import EventContext, envelope, source, uuid7
from handoff.config import MqttConfig
from handoff.config_errors import convert
from handoff.core.events import Event, EventType
from handoff.mqtt.connection import Will, new_client
from handoff.timefmt import rfc3339


@dataclass
class SimAppliance:
    """One appliance's numbering, chain and custody, enough to make its next event."""

    site: str
    device_id: str
    prefix: str = "handoff/v1"
    seq: int = 0
    chain: str = ""
    holder: str | None = None
    staff: Iterator[str] = field(default_factory=lambda: itertools.cycle(f"staff-{n:03d}" for n in range(500)))
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    reader: str = ""

    @property
    def reader_id(self) -> str:
        return self.reader or f"sim-{self.device_id}"

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.site}/{self.device_id}"

    def next_event(self, now: float) -> tuple[str, bytes]:
        """A checkout when nobody holds the device, else the holder's checkin: (topic, payload)."""
        if self.holder is None:
            self.holder = next(self.staff)
            return self.emit("checkout", now, self.holder)
        staff, self.holder = self.holder, None
        return self.emit("checkin", now, staff, reason="returned")

    def emit(
        self,
        kind: EventType,
        now: float,
        staff: str | None,
        *,
        reason: str | None = None,
        for_id: str | None = None,
        session_id: str | None = None,
    ) -> tuple[str, bytes]:
        """Its next event of any type, numbered, chained and signed: (topic, payload); the
        session is `session_id`, or one of its own."""
        context = EventContext(self.site, self.device_id, self.reader_id, clock_synced=True)
        self.chain = self.chain or genesis(source(self.site, self.reader_id))
        self.seq += 1
        handoff_id = str(uuid.uuid4())
        event = Event(
            kind,
            now,
            handoff_id,
            staff_id=staff,
            badge_ref="ab" * 32,
            session_id=session_id or handoff_id,
            reason=reason,
            for_id=for_id,
            id=uuid7(now),
        )
        body = envelope(event, self.seq, context)
        _, self.chain = sealed(body, self.chain)
        return f"{self.base}/events/{kind}", self.signed_event(body)

    def signed_event(self, body: dict[str, Any]) -> bytes:
        """The event with `data.signature` over the rest of it, as the appliance signs."""
        body["data"].pop("signature", None)
        body["data"]["signature"] = event_signature(self.key, body)
        return canonical(body)

    def state(self, now: float) -> bytes:
        body = {
            "state": "in_use" if self.holder else "available",
            "staff_id": self.holder,
            "session_id": None,
            "since": rfc3339(now),
            "seq": self.seq,
            "break_glass": False,
            "idle_lock_at": None,
        }
        return self._signed(body)

    def status(self, state: str) -> bytes:
        return self._signed({"status": state, "version": "sim", "public_key": public_key_b64(self.key)})

    def checkpoint(self, now: float) -> bytes:
        """The signed head of its chain, as the appliance publishes it retained."""
        made = make_checkpoint(self.key, source(self.site, self.reader_id), self.device_id, self.seq, self.chain, now)
        return compact_json.dumps(made).encode()

    def _signed(self, body: dict[str, Any]) -> bytes:
        return compact_json.dumps({**body, "signature": signature(self.key, body)}).encode()


def simulated(appliances: int, prefix: str, site: str, keys: Path | None = None) -> list[SimAppliance]:
    """The fleet `SIM-00000`...; with `keys`, each one signs with `keys/<device_id>.key`, made
    there (with its `.pub`, what `handoff ledger enrol` reads) when missing, so that a fleet can
    be enrolled before it runs and run again under the same keys."""
    names = [f"SIM-{index:05d}" for index in range(appliances)]
    return [SimAppliance(site, name, prefix, key=_key(keys, name)) for name in names]


def _key(directory: Path | None, device_id: str) -> Ed25519PrivateKey:
    if directory is None:
        return Ed25519PrivateKey.generate()
    path = directory / f"{device_id}.key"
    if path.exists():
        return load_signing_key(path, "--keys")
    key = Ed25519PrivateKey.generate()
    directory.mkdir(parents=True, exist_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
        out.write(private_pem(key))
    (directory / f"{device_id}.pub").write_bytes(public_pem(key))
    return key


def run_fleet(host: str, port: int, *, fleet: list[SimAppliance], rate: float, events: int | None) -> int:
    """Publish `rate` events per second in all from the fleet's clients until `events` are out
    (or forever), then each one's checkpoint; the number published."""
    clients = []
    for appliance in fleet:
        config = convert(
            {"url": f"mqtt://{host}:{port}", "allow_insecure": True, "client_id": appliance.reader_id}, MqttConfig
        )
        client = new_client(config, None, None, will=Will(f"{appliance.base}/status", appliance.status("offline")))
        client.connect(host, port, keepalive=60)
        client.loop_start()
        client.publish(f"{appliance.base}/status", appliance.status("online"), qos=1, retain=True)
        clients.append(client)
    sent = 0
    last: dict[int, MQTTMessageInfo] = {}
    start = time.monotonic()
    try:
        for client, appliance in itertools.cycle(zip(clients, fleet, strict=True)):
            if events is not None and sent >= events:
                break
            due = start + sent / rate
            if (wait := due - time.monotonic()) > 0:
                time.sleep(wait)
            now = time.time()
            topic, payload = appliance.next_event(now)
            client.publish(topic, payload, qos=1)
            last[id(client)] = client.publish(f"{appliance.base}/state", appliance.state(now), qos=1, retain=True)
            sent += 1
        for client, appliance in zip(clients, fleet, strict=True):
            last[id(client)] = client.publish(
                f"{appliance.base}/checkpoint", appliance.checkpoint(time.time()), qos=1, retain=True
            )
        for info in last.values():
            info.wait_for_publish(30)
    finally:
        for client in clients:
            client.loop_stop()
            client.disconnect()
    return sent
