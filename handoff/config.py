"""The appliance's TOML configuration, validated completely before anything starts.

A cart that boots with a typo in its config must say so at once and name the key, rather
than run with a silent default and fail a clinician later. So every key is declared here
with its type and range; unknown keys are refused too.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from handoff.errors import ConfigError

DEFAULT_CONFIG_PATH: Final = Path("/etc/handoff/handoff.toml")
CONFIG_ENV: Final = "HANDOFF_CONFIG"


@dataclass(frozen=True)
class ApplianceConfig:
    site: str
    device_id: str
    reader_id: str
    data_dir: Path
    badge_secret_file: Path
    command_key_file: Path | None


@dataclass(frozen=True)
class PolicyConfig:
    idle_timeout_s: float = 300.0
    max_session_s: float = 43200.0
    custody_timeout_s: float = 86400.0
    retap_guard_s: float = 2.0


@dataclass(frozen=True)
class MqttConfig:
    url: str
    host: str
    port: int
    tls: bool
    allow_insecure: bool
    client_id: str
    username: str
    password_file: Path | None
    ca_file: Path | None
    cert_file: Path | None
    key_file: Path | None
    topic_prefix: str
    protocol: str


@dataclass(frozen=True)
class OutboxConfig:
    retention_days: float = 30.0


@dataclass(frozen=True)
class ReaderConfig:
    kind: str
    path: str = "usb"
    name: str = ""
    auth: str = "uid"
    trust_anchors: Path | None = None


@dataclass(frozen=True)
class FeedbackConfig:
    board: str = "pi-cart-v1"


@dataclass(frozen=True)
class Config:
    source: Path
    appliance: ApplianceConfig
    policy: PolicyConfig
    mqtt: MqttConfig
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    readers: tuple[ReaderConfig, ...] = ()
    feedback: FeedbackConfig = field(default_factory=FeedbackConfig)


def resolve_config_path(given: str | None) -> Path:
    """`-c` wins, then $HANDOFF_CONFIG, then /etc/handoff/handoff.toml (SPEC section 5)."""
    if given:
        return Path(given)
    env = os.environ.get(CONFIG_ENV)
    return Path(env) if env else DEFAULT_CONFIG_PATH


def load_config(path: Path) -> Config:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {_reason(exc)}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    return parse_config(raw, path)


def parse_config(raw: Mapping[str, Any], source: Path) -> Config:
    doc = _Doc(source)
    doc.only_keys(raw, "", {"appliance", "policy", "mqtt", "outbox", "readers", "feedback"})
    appliance = _appliance(doc, doc.table(raw, "appliance", required=True))
    return Config(
        source=source,
        appliance=appliance,
        policy=_policy(doc, doc.table(raw, "policy")),
        mqtt=_mqtt(doc, doc.table(raw, "mqtt"), appliance.reader_id),
        outbox=_outbox(doc, doc.table(raw, "outbox")),
        readers=_readers(doc, raw.get("readers", [])),
        feedback=_feedback(doc, doc.table(raw, "feedback")),
    )


def default_reader_id() -> str:
    """A stable id for this Pi: its board serial, else the systemd machine id."""
    for candidate in (Path("/proc/device-tree/serial-number"), Path("/sys/firmware/devicetree/base/serial-number")):
        serial = _read_quietly(candidate).strip("\x00 \n")
        if serial:
            return f"rdr-{serial[-8:].lower()}"
    for line in _read_quietly(Path("/proc/cpuinfo")).splitlines():
        if line.startswith("Serial") and ":" in line:
            serial = line.split(":", 1)[1].strip()
            if serial.strip("0"):
                return f"rdr-{serial[-8:].lower()}"
    machine_id = _read_quietly(Path("/etc/machine-id")).strip()
    return f"rdr-{machine_id[:8]}" if machine_id else "rdr-unknown"


class _Doc:
    """Reads typed values out of the parsed TOML, naming file and key in every refusal."""

    def __init__(self, source: Path) -> None:
        self.source = source

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"config {self.source}: {key} {problem}")

    def only_keys(self, table: Mapping[str, Any], prefix: str, allowed: set[str]) -> None:
        for key in table:
            if key not in allowed:
                where = f"{prefix}.{key}" if prefix else key
                known = ", ".join(sorted(allowed))
                raise self.fail(where, f"is not a known key (known here: {known})")

    def table(self, raw: Mapping[str, Any], name: str, *, required: bool = False) -> Mapping[str, Any]:
        if name not in raw:
            if required:
                raise self.fail(f"[{name}]", "is required")
            return {}
        value = raw[name]
        if not isinstance(value, dict):
            raise self.fail(name, "must be a table")
        return value

    def string(self, table: Mapping[str, Any], prefix: str, key: str, default: str | None = None) -> str:
        if key not in table:
            if default is None:
                raise self.fail(f"{prefix}.{key}", "is required")
            return default
        value = table[key]
        if not isinstance(value, str):
            raise self.fail(f"{prefix}.{key}", f"must be a string, got {_show(value)}")
        return value

    def name(self, table: Mapping[str, Any], prefix: str, key: str, default: str | None = None) -> str:
        """A non-empty identifier safe inside an MQTT topic level and a URN."""
        value = self.string(table, prefix, key, default)
        if not value or any(ch in value for ch in "/+#:\x00 ") or not value.isprintable():
            raise self.fail(f"{prefix}.{key}", f"must be non-empty without spaces, '/', '+', '#' or ':', got {value!r}")
        return value

    def path(self, table: Mapping[str, Any], prefix: str, key: str, default: str = "") -> Path | None:
        value = self.string(table, prefix, key, default)
        return Path(value) if value else None

    def boolean(self, table: Mapping[str, Any], prefix: str, key: str, default: bool) -> bool:
        value = table.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(f"{prefix}.{key}", f"must be true or false, got {_show(value)}")
        return value

    def seconds(
        self, table: Mapping[str, Any], prefix: str, key: str, default: float, *, zero_ok: bool = False
    ) -> float:
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.fail(f"{prefix}.{key}", f"must be a number of seconds, got {_show(value)}")
        if value < 0 or (value == 0 and not zero_ok):
            bound = "zero or more" if zero_ok else "greater than zero"
            raise self.fail(f"{prefix}.{key}", f"must be {bound}, got {value}")
        return float(value)

    def choice(self, table: Mapping[str, Any], prefix: str, key: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.string(table, prefix, key, default)
        if value not in allowed:
            raise self.fail(f"{prefix}.{key}", f"must be one of {', '.join(allowed)}, got {value!r}")
        return value


def _appliance(doc: _Doc, table: Mapping[str, Any]) -> ApplianceConfig:
    p = "appliance"
    doc.only_keys(table, p, {"site", "device_id", "reader_id", "data_dir", "badge_secret_file", "command_key_file"})
    reader_id = doc.name(table, p, "reader_id", "") if table.get("reader_id") else default_reader_id()
    data_dir = doc.path(table, p, "data_dir", "/var/lib/handoff")
    secret = doc.path(table, p, "badge_secret_file", "/etc/handoff/badge.key")
    if data_dir is None:
        raise doc.fail("appliance.data_dir", "must not be empty")
    if secret is None:
        raise doc.fail("appliance.badge_secret_file", "must not be empty")
    return ApplianceConfig(
        site=doc.name(table, p, "site"),
        device_id=doc.name(table, p, "device_id"),
        reader_id=reader_id,
        data_dir=data_dir,
        badge_secret_file=secret,
        command_key_file=doc.path(table, p, "command_key_file"),
    )


def _policy(doc: _Doc, table: Mapping[str, Any]) -> PolicyConfig:
    p = "policy"
    d = PolicyConfig()
    doc.only_keys(table, p, {"idle_timeout_s", "max_session_s", "custody_timeout_s", "retap_guard_s"})
    return PolicyConfig(
        idle_timeout_s=doc.seconds(table, p, "idle_timeout_s", d.idle_timeout_s),
        max_session_s=doc.seconds(table, p, "max_session_s", d.max_session_s),
        custody_timeout_s=doc.seconds(table, p, "custody_timeout_s", d.custody_timeout_s),
        retap_guard_s=doc.seconds(table, p, "retap_guard_s", d.retap_guard_s, zero_ok=True),
    )


def _mqtt(doc: _Doc, table: Mapping[str, Any], reader_id: str) -> MqttConfig:
    p = "mqtt"
    doc.only_keys(
        table,
        p,
        {
            "url",
            "allow_insecure",
            "client_id",
            "username",
            "password_file",
            "ca_file",
            "cert_file",
            "key_file",
            "topic_prefix",
            "protocol",
        },
    )
    url = doc.string(table, p, "url", "mqtts://localhost:8883")
    allow_insecure = doc.boolean(table, p, "allow_insecure", False)
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise doc.fail("mqtt.url", f"must look like mqtts://HOST:PORT, got {url!r}")
    try:
        port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
    except ValueError:
        raise doc.fail("mqtt.url", f"has a bad port in {url!r}") from None
    if parts.scheme == "mqtt" and not allow_insecure:
        raise doc.fail("mqtt.url", f"is unencrypted ({url!r}); use mqtts:// or set mqtt.allow_insecure = true")
    cert_file = doc.path(table, p, "cert_file")
    key_file = doc.path(table, p, "key_file")
    if (cert_file is None) != (key_file is None):
        raise doc.fail("mqtt.key_file" if key_file is None else "mqtt.cert_file", "must be set with its pair")
    prefix = doc.string(table, p, "topic_prefix", "handoff/v1")
    if not prefix or prefix.startswith("/") or prefix.endswith("/") or any(c in prefix for c in "+#\x00"):
        raise doc.fail("mqtt.topic_prefix", f"must be topic levels without '+', '#' or outer '/', got {prefix!r}")
    return MqttConfig(
        url=url,
        host=parts.hostname,
        port=port,
        tls=parts.scheme == "mqtts",
        allow_insecure=allow_insecure,
        client_id=doc.string(table, p, "client_id", "") or reader_id,
        username=doc.string(table, p, "username", ""),
        password_file=doc.path(table, p, "password_file"),
        ca_file=doc.path(table, p, "ca_file"),
        cert_file=cert_file,
        key_file=key_file,
        topic_prefix=prefix,
        protocol=doc.choice(table, p, "protocol", "5", ("5", "3.1.1")),
    )


def _outbox(doc: _Doc, table: Mapping[str, Any]) -> OutboxConfig:
    doc.only_keys(table, "outbox", {"retention_days"})
    value = table.get("retention_days", OutboxConfig.retention_days)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise doc.fail("outbox.retention_days", f"must be a number of days greater than zero, got {_show(value)}")
    return OutboxConfig(retention_days=float(value))


def _readers(doc: _Doc, raw: Any) -> tuple[ReaderConfig, ...]:
    if not isinstance(raw, list):
        raise doc.fail("readers", "must be an array of tables ([[readers]])")
    readers = []
    for index, table in enumerate(raw):
        p = f"readers[{index}]"
        if not isinstance(table, dict):
            raise doc.fail(p, "must be a table")
        kind = doc.choice(table, p, "kind", "", ("nfc", "pcsc")) if "kind" in table else None
        if kind is None:
            raise doc.fail(f"{p}.kind", "is required (nfc or pcsc)")
        if kind == "nfc":
            doc.only_keys(table, p, {"kind", "path"})
            path = doc.string(table, p, "path", "usb")
            if not path:
                raise doc.fail(f"{p}.path", "must be an nfcpy path such as usb or udp:127.0.0.1:54321")
            readers.append(ReaderConfig(kind=kind, path=path))
            continue
        doc.only_keys(table, p, {"kind", "name", "auth", "trust_anchors"})
        auth = doc.choice(table, p, "auth", "uid", ("uid", "piv-cak"))
        anchors = doc.path(table, p, "trust_anchors")
        if auth == "piv-cak" and anchors is None:
            raise doc.fail(f"{p}.trust_anchors", 'is required when auth = "piv-cak"')
        readers.append(ReaderConfig(kind=kind, name=doc.string(table, p, "name", ""), auth=auth, trust_anchors=anchors))
    return tuple(readers)


def _feedback(doc: _Doc, table: Mapping[str, Any]) -> FeedbackConfig:
    doc.only_keys(table, "feedback", {"board"})
    return FeedbackConfig(board=doc.name(table, "feedback", "board", "pi-cart-v1"))


def _show(value: object) -> str:
    kinds: dict[type, str] = {str: "a string", bool: "a boolean", int: "an integer", float: "a number"}
    described = kinds.get(type(value), type(value).__name__)
    return f"{described} ({value!r})" if isinstance(value, str | bool | int | float) else described


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def _read_quietly(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


__all__: list[str] = [
    "ApplianceConfig",
    "Config",
    "FeedbackConfig",
    "MqttConfig",
    "OutboxConfig",
    "PolicyConfig",
    "ReaderConfig",
    "load_config",
    "parse_config",
    "resolve_config_path",
]
