"""Building a paho-mqtt 2.x client from `MqttConfig`: protocol, session, TLS, credentials, will.

Certificates and keys are loaded here, before any connection, so a bad file is one line naming
it (a `ConfigError`) and not an SSL traceback from inside paho's network loop.
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.client import MQTT_CLEAN_START_FIRST_ONLY, CleanStartOption, Client
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from handoff import compact_json
from handoff.audit.signature import public_key_b64, signed
from handoff.cloudevents import CONTENT_TYPE
from handoff.commands.limits import LARGEST_COMMAND_BYTES
from handoff.config import MqttConfig
from handoff.errors import ConfigError
from handoff.secret_file import read_private
from handoff.timefmt import rfc3339

MqttVersion: TypeAlias = Literal["5", "3.1.1"]


@dataclass(frozen=True)
class Will:
    """The retained message the broker publishes when the connection dies without a goodbye."""

    topic: str
    payload: bytes


SESSION_EXPIRY_S: Final = 7 * 86400
"""How long the broker keeps our session (and commands queued for us) while we are away."""
KEEPALIVE_S: Final = 30
RECONNECT_MAX_S: Final = 30
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
        read_private(config.key_file, "mqtt.key_file", owner_only=True)
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
    """The last will, signed and carrying the public key like every status, so that an `offline`
    nobody signed cannot pass for this appliance's. Made when the client connects: its `time`
    dates the connection, not the disconnection."""
    body: dict[str, Any] = {"status": "offline", "version": version, "time": rfc3339(time.time())}
    if key is not None:
        body["public_key"] = public_key_b64(key)
    return compact_json.dumps(signed(key, body)).encode()


def new_client(config: MqttConfig, context: ssl.SSLContext | None, secret: str | None, *, will: Will | None) -> Client:
    """A program's own client. The publisher builds a fresh one per connection: paho's in-memory
    queue must not replay what the outbox resends."""
    client = _client(config, context, secret, manual_ack=False, reconnect=False, persistent=True)
    if will is not None:
        client.will_set(will.topic, will.payload, qos=1, retain=True)
    return client


def consumer_client(config: MqttConfig, context: ssl.SSLContext | None, secret: str | None) -> Client:
    """The ledger's client: it acknowledges each message itself, after its commit, and paho
    reconnects it (the consumer has no outbox of its own to resend from)."""
    client = _client(config, context, secret, manual_ack=True, reconnect=True, persistent=True)
    client.reconnect_delay_set(1, RECONNECT_MAX_S)
    return client


def probe_client(config: MqttConfig, context: ssl.SSLContext | None, secret: str | None, client_id: str) -> Client:
    """A short-lived client for checks (`handoff doctor`, `handoff ledger doctor`), under its own
    id (the program's id would end the running program's session), with no will and no session
    left behind."""
    return _client(
        msgspec.structs.replace(config, client_id=client_id),
        context,
        secret,
        manual_ack=False,
        reconnect=False,
        persistent=False,
    )


def _client(
    config: MqttConfig,
    context: ssl.SSLContext | None,
    secret: str | None,
    *,
    manual_ack: bool,
    reconnect: bool,
    persistent: bool,
) -> Client:
    """The one place a paho client is built: protocol and session, TLS and credentials."""
    v5 = config.protocol == "5"
    client = Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=config.client_id,
        clean_session=None if v5 else not persistent,
        protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
        reconnect_on_failure=reconnect,
        manual_ack=manual_ack,
    )
    if context is not None:
        client.tls_set_context(context)
    if config.username:
        client.username_pw_set(config.username, secret)
    return client


def clean_start(config: MqttConfig) -> CleanStartOption:
    """MQTT 5 resumes the session with clean_start False; 3.1.1 has clean_session on the client."""
    return False if config.protocol == "5" else MQTT_CLEAN_START_FIRST_ONLY


def connect_properties(config: MqttConfig, receive_maximum: int | None = None) -> Properties | None:
    """MQTT 5 only; `receive_maximum` bounds the unacknowledged messages the broker sends at once."""
    if config.protocol != "5":
        return None
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = SESSION_EXPIRY_S
    properties.MaximumPacketSize = MAX_PACKET_BYTES
    if receive_maximum is not None:
        properties.ReceiveMaximum = receive_maximum
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
