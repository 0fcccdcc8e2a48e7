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

import paho.mqtt.client as mqtt
from cryptography import x509
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from handoff.config import MqttConfig
from handoff.doctor.result import CheckResult, failed, passed, skipped, warned

CERT_WARN_DAYS: Final = 30


def tls_context(config: MqttConfig) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)
    if config.cert_file and config.key_file and config.cert_file.exists():
        context.load_cert_chain(str(config.cert_file), str(config.key_file))
    return context


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
    try:
        context = tls_context(config)
    except (OSError, ssl.SSLError) as exc:
        raw.close()
        return failed(name, f"TLS files unusable: {exc}; check mqtt.ca_file, mqtt.cert_file and mqtt.key_file")
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
    if not (config.cert_file and config.cert_file.exists()):
        return warned(name, f"TLS to {where} ok; no client certificate yet, so MQTT CONNECT was not tried")
    return _mqtt_connect(config, context, timeout)


def _mqtt_connect(config: MqttConfig, context: ssl.SSLContext, timeout: float) -> CheckResult:
    name = "broker"
    where = f"{config.host}:{config.port}"
    protocol = mqtt.MQTTv5 if config.protocol == "5" else mqtt.MQTTv311
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{config.client_id}-doctor", protocol=protocol)
    client.tls_set_context(context)
    if config.username:
        try:
            password = config.password_file.read_text().strip() if config.password_file else None
        except OSError as exc:
            return failed(name, f"mqtt.password_file {config.password_file} cannot be read: {exc.strerror}")
        client.username_pw_set(config.username, password)
    answered = threading.Event()
    outcome: list[str] = []

    def on_connect(_c: mqtt.Client, _u: object, _f: object, reason: ReasonCode, _p: object) -> None:
        outcome.append("" if not reason.is_failure else str(reason))
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
    except (OSError, ssl.SSLError) as exc:
        return failed(name, f"MQTT CONNECT to {where} failed: {exc}; the broker may refuse this client certificate")
    finally:
        client.disconnect()
        client.loop_stop()
    if not outcome:
        return failed(
            name, f"no CONNACK from {where} within {timeout:g} s; the broker may refuse the client certificate"
        )
    if outcome[0]:
        return failed(
            name,
            f"broker refused CONNECT: {outcome[0]}; check that the CA the broker trusts issued "
            "mqtt.cert_file, that it has not expired, and the broker's ACL for this reader",
        )
    return passed(name, f"TLS and MQTT CONNECT to {where} ok")


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
