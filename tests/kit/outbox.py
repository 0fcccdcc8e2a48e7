"""Making configs and events for the outbox and publisher tests."""

from __future__ import annotations

import json
import time
from pathlib import Path

from handoff.cloudevents import EventContext, source
from handoff.config import MqttConfig
from handoff.core.events import Event
from handoff.core.state import Custody, State
from tests.kit.config import DEVICE, READER, SITE

CONTEXT = EventContext(site=SITE, device_id=DEVICE, reader_id=READER, clock_synced=True)
SOURCE = source(CONTEXT.site, CONTEXT.reader_id)


def mqtt_config(port: int, **changes: object) -> MqttConfig:
    base: dict[str, object] = {"url": f"mqtt://127.0.0.1:{port}", "allow_insecure": True, "client_id": READER}
    return MqttConfig.model_validate({**base, **changes})


def checkout(staff: str, t: float | None = None) -> Event:
    return Event(type="checkout", time=t or time.time(), handoff_id="h-" + staff, staff_id=staff, badge_ref="ab" * 32)


def in_use(staff: str, t: float = 1_700_000_000.0) -> State:
    return State(mode="in_use", since=t, custody=Custody(staff, "ab" * 32, t, "sess", t, t, t))


def seqs(payloads: list[bytes]) -> list[int]:
    return [json.loads(p)["data"]["seq"] for p in payloads]


def data_dir(tmp: Path) -> Path:
    return tmp / "data"
