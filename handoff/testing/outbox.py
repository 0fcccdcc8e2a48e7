"""Events, broker configs and publishers for the outbox and publisher tests and the drain benchmark."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from handoff import db
from handoff.audit.checkpoint import CheckpointPolicy
from handoff.cloudevents import EventContext, source, uuid7
from handoff.config import MqttConfig
from handoff.config_errors import convert
from handoff.core.events import Event
from handoff.core.state import Custody, State
from handoff.disk import disk_state
from handoff.mqtt.publisher import Publisher, PublisherSettings
from handoff.mqtt.topics import Topics
from handoff.store import Store
from handoff.testing.config import DEVICE, READER, SITE

CONTEXT = EventContext(site=SITE, device_id=DEVICE, reader_id=READER, clock_synced=True)
SOURCE = source(CONTEXT.site, CONTEXT.reader_id)


def mqtt_config(port: int, **changes: object) -> MqttConfig:
    base: dict[str, object] = {"url": f"mqtt://127.0.0.1:{port}", "allow_insecure": True, "client_id": READER}
    return convert({**base, **changes}, MqttConfig)


def checkout(staff: str, t: float | None = None) -> Event:
    at = t or time.time()
    return Event(type="checkout", time=at, handoff_id="h-" + staff, staff_id=staff, badge_ref="ab" * 32, id=uuid7(at))


def in_use(staff: str, t: float = 1_700_000_000.0) -> State:
    return State(mode="in_use", since=t, custody=Custody(staff, "ab" * 32, t, "sess", t, t, t))


def seqs(payloads: list[bytes]) -> list[int]:
    return [json.loads(p)["data"]["seq"] for p in payloads]


def data_dir(tmp: Path) -> Path:
    return tmp / "data"


def publisher(
    config: MqttConfig,
    data: Path,
    *,
    settings: PublisherSettings | None = None,
    on_command: Callable[[str, bytes], None] = lambda name, payload: None,
    health_provider: Callable[[], list[dict[str, Any]]] = list,
    version: str = "test",
    key: Ed25519PrivateKey | None = None,
) -> Publisher:
    """A publisher on its own connection to the outbox in `data`, put together as the appliance does:
    with a `key`, its store holds the key too, as it signs the events it hands out."""
    return Publisher(
        config,
        Topics(config.topic_prefix, SITE, DEVICE),
        Store(db.connect(data), checkpoints=CheckpointPolicy(key, 100, 300.0) if key is not None else None),
        source=SOURCE,
        version=version,
        disk=lambda: disk_state(data).as_dict(),
        on_command=on_command,
        health_provider=health_provider,
        settings=settings or PublisherSettings(),
        key=key,
    )
