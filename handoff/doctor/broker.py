"""Can this cart reach its broker over TLS, and is its client certificate still valid?

The steps go TCP, then TLS, then MQTT CONNECT, so the failing step names the fix: a firewall,
a wrong CA, or a certificate the broker refuses.
"""

from __future__ import annotations

import socket
import ssl
import threading
from datetime import UTC, datetime, timedelta
from typing import Final

import msgspec
import paho.mqtt.client as mqtt
from cryptography import x509
from paho.mqtt.reasoncodes import ReasonCode

from handoff.config import MqttConfig
from handoff.doctor.result import CheckResult, failed, passed, skipped, warned
from handoff.errors import ConfigError
from handoff.mqtt.connection import MqttVersion, password, probe_client, tls_context

CERT_WARN_DAYS: Final = 30


def check_broker(config: MqttConfig, timeout: float = 5.0) -> CheckResult:
    name = "broker"
    where = f"{config.host}:{config.port}"
    try:
        raw = socket.create_connection((config.host, config.port), timeout=timeout)
    except OSError as exc:
        return failed(name, f"cannot reach {where}: {exc.strerror or exc}; check mqtt.url, network and firewall")
    if not config.tls:
        raw.close()
        return warned(name, f"{where} reachable without TLS (allow_insecure); use mqtts:// in production")
    has_certificate = _has_client_certificate(config)
    try:
        context = tls_context(config, client_certificate=has_certificate)
    except ConfigError as exc:
        raw.close()
        return failed(name, f"TLS files unusable: {exc}")
    try:
        with context.wrap_socket(raw, server_hostname=config.host):
            pass
    except ssl.SSLCertVerificationError as exc:
        return failed(
            name,
            f"{where} presented a certificate not trusted ({exc.verify_message}); "
            f"set mqtt.ca_file to the CA that signed the broker's certificate",
        )
    except (OSError, ssl.SSLError) as exc:
        return failed(name, f"TLS handshake with {where} failed: {exc}; check the broker's TLS listener")
    finally:
        raw.close()
    if not has_certificate:
        return warned(name, f"TLS to {where} ok; no client certificate yet, so MQTT CONNECT was not tried")
    return _mqtt_connect(config, context, timeout)


def _has_client_certificate(config: MqttConfig) -> bool:
    """mqtt.cert_file is set but may not exist yet: provisioning writes a CSR for the site CA to sign."""
    return config.cert_file is not None and config.cert_file.exists()


def _mqtt_connect(config: MqttConfig, context: ssl.SSLContext, timeout: float) -> CheckResult:
    name = "broker"
    where = f"{config.host}:{config.port}"
    try:
        refused = _connack(config, config.protocol, context, timeout)
    except ConfigError as exc:
        return failed(name, str(exc))
    except (OSError, ssl.SSLError) as exc:
        return failed(name, f"MQTT CONNECT to {where} failed: {exc}; the broker may refuse this client certificate")
    if refused == NO_ANSWER:
        return failed(
            name, f"no CONNACK from {where} within {timeout:g} s; the broker may refuse the client certificate"
        )
    if refused is not None:
        return failed(
            name,
            f"broker refused CONNECT: {refused}; check that the CA the broker trusts issued "
            "mqtt.cert_file, that it has not expired, and the broker's ACL for this reader",
        )
    return passed(name, f"TLS and MQTT CONNECT to {where} ok")


def check_protocol(config: MqttConfig, timeout: float = 5.0) -> CheckResult:
    """Which MQTT version the broker accepts, against `mqtt.protocol`.

    A broker that only speaks 3.1.1 refuses (or ignores) an MQTT 5 CONNECT, and the appliance
    then only logs that the connection failed: this names the key and the value to set.
    """
    name = "broker protocol"
    if config.tls and not _has_client_certificate(config):
        return skipped(name, "no client certificate yet, so MQTT CONNECT cannot be tried")
    try:
        context = tls_context(config) if config.tls else None
        v5 = _connack(config, "5", context, timeout)
        v311 = _connack(config, "3.1.1", context, timeout)
    except (ConfigError, OSError, ssl.SSLError) as exc:
        return skipped(name, f"MQTT CONNECT failed ({exc}); see the broker check")
    where = f"{config.host}:{config.port}"
    if v5 is None and config.protocol == "5":
        return passed(name, f'{where} speaks MQTT 5, as mqtt.protocol = "5" asks')
    if v5 is None:
        return warned(
            name,
            f'{where} speaks MQTT 5: set mqtt.protocol = "5" in [mqtt] so the broker can say why it refuses '
            "an event and can hold oversized commands back",
        )
    if v311 is None and config.protocol == "3.1.1":
        return passed(name, f'{where} speaks only MQTT 3.1.1 (MQTT 5: {v5}), as mqtt.protocol = "3.1.1" asks')
    if v311 is None:
        return failed(
            name,
            f'{where} does not accept MQTT 5 ({v5}) but accepts MQTT 3.1.1: set mqtt.protocol = "3.1.1" in [mqtt]',
        )
    return skipped(name, f"{where} accepted neither MQTT 5 ({v5}) nor 3.1.1 ({v311}); see the broker check")


NO_ANSWER: Final = "no CONNACK in time"


def _connack(config: MqttConfig, protocol: MqttVersion, context: ssl.SSLContext | None, timeout: float) -> str | None:
    """None if the broker accepted a CONNECT in `protocol`, else what it answered."""
    client = doctor_client(config, context, protocol)
    answered = threading.Event()
    outcome: list[str | None] = []

    def on_connect(_c: mqtt.Client, _u: object, _f: object, reason: ReasonCode, _p: object) -> None:
        outcome.append(str(reason) if reason.is_failure else None)
        answered.set()

    def on_disconnect(_c: mqtt.Client, _u: object, _f: object, _r: ReasonCode, _p: object) -> None:
        if not answered.is_set():
            outcome.append("it closed the connection before answering")
            answered.set()

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    try:
        client.connect(config.host, config.port, keepalive=10)
        client.loop_start()
        answered.wait(timeout)
    finally:
        client.disconnect()
        client.loop_stop()
    return outcome[0] if outcome else NO_ANSWER


def doctor_client(config: MqttConfig, context: ssl.SSLContext | None, protocol: MqttVersion) -> mqtt.Client:
    """The appliance's own identity and credentials, in `protocol`, under its own client id."""
    tried = msgspec.structs.replace(config, protocol=protocol)
    return probe_client(tried, context, password(config), f"{config.client_id}-doctor")


def check_client_cert(config: MqttConfig, now: datetime) -> CheckResult:
    name = "client certificate"
    if config.cert_file is None:
        return skipped(name, "mqtt.cert_file not set: no mutual TLS")
    try:
        cert = x509.load_pem_x509_certificate(config.cert_file.read_bytes())
    except FileNotFoundError:
        return failed(name, f"{config.cert_file} missing; have the site CA sign reader.csr and save the result there")
    except (OSError, ValueError) as exc:
        return failed(name, f"{config.cert_file} is not a PEM certificate: {exc}")
    expires = cert.not_valid_after_utc
    if expires <= now:
        return failed(name, f"{config.cert_file} expired {expires:%Y-%m-%d}; have the site CA issue a new one")
    if expires - now < timedelta(days=CERT_WARN_DAYS):
        return warned(name, f"{config.cert_file} expires {expires:%Y-%m-%d}; renew it before then")
    return passed(name, f"{config.cert_file} valid until {expires:%Y-%m-%d}")


def utc_now() -> datetime:
    return datetime.now(UTC)
