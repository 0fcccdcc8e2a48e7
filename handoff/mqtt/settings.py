"""What the publisher is made with, fixed for its life."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from handoff.config import MqttConfig
from handoff.mqtt.topics import Topics


@dataclass(frozen=True)
class PublisherSettings:
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 60.0
    retention_days: float = 30.0


@dataclass(frozen=True)
class Link:
    """What every connection is made with."""

    config: MqttConfig
    topics: Topics
    source: str
    """Whose `seq` the retained state carries, so a replacement appliance is not taken for a rewind."""
    version: str
    tls: ssl.SSLContext | None
    secret: str | None
    key: Ed25519PrivateKey | None
    """The appliance's audit key: it signs status, state, the last will and command results."""
