"""Simulated appliances for the ledger's benchmarks, demos and tests.

Each one is a small MQTT client with the appliance's last will that publishes what an
appliance would: valid, chained CloudEvents with their seq, the retained state and status.
It is not N appliances: no readers, no SQLite outbox, no state machine, no retries; the badge
traffic is a plain rotation of checkouts and checkins. Each client runs paho's own network
thread, which suits up to a few hundred of them.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from paho.mqtt.client import MQTTMessageInfo

from handoff import compact_json
from handoff.audit.chain import genesis, sealed
from handoff.cloudevents import EventContext, envelope, source, uuid7
from handoff.config import MqttConfig
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

    @property
    def reader_id(self) -> str:
        return f"sim-{self.device_id}"

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.site}/{self.device_id}"

    def next_event(self, now: float) -> tuple[str, bytes]:
        """A checkout when nobody holds the device, else the holder's checkin: (topic, payload)."""
        context = EventContext(self.site, self.device_id, self.reader_id, clock_synced=True)
        self.chain = self.chain or genesis(source(self.site, self.reader_id))
        self.seq += 1
        handoff_id = str(uuid.uuid4())
        kind: EventType
        if self.holder is None:
            self.holder = next(self.staff)
            kind, reason, staff = "checkout", None, self.holder
        else:
            kind, reason, staff, self.holder = "checkin", "returned", self.holder, None
        event = Event(
            kind,
            now,
            handoff_id,
            staff_id=staff,
            badge_ref="ab" * 32,
            session_id=handoff_id,
            reason=reason,
            id=uuid7(now),
        )
        payload, self.chain = sealed(envelope(event, self.seq, context), self.chain)
        return f"{self.base}/events/{kind}", payload

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
        return compact_json.dumps(body).encode()


def status(state: str) -> bytes:
    return compact_json.dumps({"status": state, "version": "sim"}).encode()


def run_fleet(host: str, port: int, *, appliances: int, rate: float, events: int | None, prefix: str, site: str) -> int:
    """Publish `rate` events per second in all from `appliances` clients until `events` are out
    (or forever); the number published."""
    fleet = [SimAppliance(site, f"SIM-{index:05d}", prefix) for index in range(appliances)]
    clients = []
    for appliance in fleet:
        config = MqttConfig.model_validate(
            {"url": f"mqtt://{host}:{port}", "allow_insecure": True, "client_id": appliance.reader_id}
        )
        client = new_client(config, None, None, will=Will(f"{appliance.base}/status", status("offline")))
        client.connect(host, port, keepalive=60)
        client.loop_start()
        client.publish(f"{appliance.base}/status", status("online"), qos=1, retain=True)
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
        for info in last.values():
            info.wait_for_publish(30)
    finally:
        for client in clients:
            client.loop_stop()
            client.disconnect()
    return sent
