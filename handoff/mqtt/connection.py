"""Building a paho-mqtt 2.x client from `MqttConfig`: protocol, session, TLS, credentials, will.

Certificates and keys are loaded here, before any connection, so a bad file is one line naming
it (a `ConfigError`) and not an SSL traceback from inside paho's network loop.
"""

from __future__ import annotations

import ssl
import time
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.client import MQTT_CLEAN_START_FIRST_ONLY, CleanStartOption, Client
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from handoff import compact_json
from handoff.audit.signature import public_key_b64, signed
from handoff.cloudevents import CONTENT_TYPE
from handoff.commands.parse import LARGEST_COMMAND_BYTES
from handoff.config import MqttConfig
from handoff.errors import ConfigError
from handoff.mqtt.topics import Topics
from handoff.timefmt import rfc3339

SESSION_EXPIRY_S: Final = 7 * 86400
"""How long the broker keeps our session (and commands queued for us) while we are away."""
KEEPALIVE_S: Final = 30
MAX_PACKET_BYTES: Final = LARGEST_COMMAND_BYTES + 64 * 1024
"""Announced in CONNECT (MQTT 5) so the broker drops, instead of sending, a command larger than
any the appliance accepts: paho reads a packet whole before anyone can look at it, so a 255 MiB
publish to `cmd/directory` would otherwise cost a 1 GB Pi its memory. The margin covers topic
and properties."""


def tls_context(config: MqttConfig, *, client_certificate: bool = True) -> ssl.SSLContext:
    """Raises a `ConfigError` naming the key and file that cannot be used.

    `client_certificate=False` leaves mqtt.cert_file out: `handoff doctor` still tries the TLS
    handshake on a cart whose certificate the site CA has not signed yet.
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if config.ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(config.ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"mqtt.ca_file {config.ca_file}: not a usable CA certificate ({_why(exc)})") from None
    if client_certificate and config.cert_file is not None and config.key_file is not None:
        _readable(config.cert_file, "mqtt.cert_file")
        _readable(config.key_file, "mqtt.key_file")
        try:
            context.load_cert_chain(certfile=str(config.cert_file), keyfile=str(config.key_file))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"mqtt.cert_file {config.cert_file} / mqtt.key_file {config.key_file}: "
                f"not a matching certificate and key ({_why(exc)})"
            ) from None
    return context


def password(config: MqttConfig) -> str | None:
    if config.password_file is None:
        return None
    try:
        return config.password_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"mqtt.password_file {config.password_file}: cannot be read ({_why(exc)})") from None


def offline_payload(version: str, key: Ed25519PrivateKey | None) -> bytes:
    """The last will, signed like every status, with the key it is signed by: a ledger that
    believes it has checked it. Made when the client connects, so its `time` dates the connection."""
    body: dict[str, Any] = {"status": "offline", "version": version, "time": rfc3339(time.time())}
    if key is not None:
        body["public_key"] = public_key_b64(key)
    return compact_json.dumps(signed(key, body)).encode()


def new_client(
    config: MqttConfig,
    topics: Topics,
    version: str,
    context: ssl.SSLContext | None,
    secret: str | None,
    key: Ed25519PrivateKey | None,
    *,
    will: bool = True,
) -> Client:
    """A fresh client per connection: paho's in-memory queue must not replay what the outbox resends."""
    v5 = config.protocol == "5"
    client = Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=config.client_id,
        clean_session=None if v5 else False,
        protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
        reconnect_on_failure=False,
    )
    if context is not None:
        client.tls_set_context(context)
    if config.username:
        client.username_pw_set(config.username, secret)
    if will:
        client.will_set(topics.status, offline_payload(version, key), qos=1, retain=True)
    return client


def clean_start(config: MqttConfig) -> CleanStartOption:
    """MQTT 5 resumes the session with clean_start False; 3.1.1 has clean_session on the client."""
    return False if config.protocol == "5" else MQTT_CLEAN_START_FIRST_ONLY


def connect_properties(config: MqttConfig) -> Properties | None:
    if config.protocol != "5":
        return None
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = SESSION_EXPIRY_S
    properties.MaximumPacketSize = MAX_PACKET_BYTES
    return properties


def event_properties(config: MqttConfig) -> Properties | None:
    if config.protocol != "5":
        return None
    properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    properties.ContentType = CONTENT_TYPE
    return properties


def _readable(path: Path, key: str) -> None:
    try:
        path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{key} {path}: cannot be read ({_why(exc)})") from None


def _why(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc) or type(exc).__name__
