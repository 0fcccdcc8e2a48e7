"""The appliance's TOML configuration, declared once and validated completely before anything starts.

A cart that boots with a typo in its config must say so at once and name the key, rather than
run with a silent default and fail a clinician later. Every key of `handoff.toml` is a field of
one of the pydantic models below, with its type, default and range; unknown keys are refused.
The allowed keys, the error messages (`handoff.config_errors`) and `handoff provision`'s flags
are all derived from these models, so they cannot drift apart.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Final, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from handoff.config_errors import KeyedValueError, first_error
from handoff.errors import ConfigError

DEFAULT_CONFIG_PATH: Final = Path("/etc/handoff/handoff.toml")
CONFIG_ENV: Final = "HANDOFF_CONFIG"

DAY: Final = 86400.0


def _blank_is_none(value: object) -> object:
    """An empty string in TOML means "not set" for an optional file."""
    return None if value == "" else value


def _name(value: str) -> str:
    """A non-empty identifier safe inside an MQTT topic level and a URN."""
    if not value or any(ch in value for ch in "/+#:\x00 ") or not value.isprintable():
        raise ValueError(f"must be non-empty without spaces, '/', '+', '#' or ':', got {value!r}")
    return value


def _not_blank(value: object) -> object:
    if value == "":
        raise ValueError("must not be empty")
    return value


def seconds_field(default: float, at_most: float, bound: str, *, zero_ok: bool = False) -> Any:
    """A timer: positive (or zero where the key allows it), finite, and below a sane bound named in the error."""
    return Field(
        default,
        gt=None if zero_ok else 0.0,
        ge=0.0 if zero_ok else None,
        le=at_most,
        json_schema_extra={"bound": bound},
    )


Name = Annotated[str, AfterValidator(_name)]
LaxPath = Annotated[Path, Field(strict=False)]
"""A path from a TOML string (strict pydantic takes only Path objects)."""
FilePath = Annotated[LaxPath, BeforeValidator(_not_blank)]
OptionalPath = Annotated[LaxPath | None, BeforeValidator(_blank_is_none)]


class Section(BaseModel):
    """Strict (no "5" for 5, no "yes" for true), frozen, and no key that is not declared."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)
    flag_prefix: ClassVar[str] = ""
    """Prefix of `handoff provision`'s flags for this table's keys, where a bare key would be ambiguous."""


class ApplianceConfig(Section):
    site: Name = Field(json_schema_extra={"prompt": "site (e.g. st-elsewhere)"})
    device_id: Name = Field(json_schema_extra={"prompt": "device id of the attached device (e.g. WOW-3N-07)"})
    reader_id: Name
    """Filled from the Pi's serial or the machine id by `Config` when the file leaves it out."""
    data_dir: FilePath = Path("/var/lib/handoff")
    badge_secret_file: FilePath = Field(Path("/etc/handoff/badge.key"), json_schema_extra={"provision": False})
    command_key_file: OptionalPath = None
    allow_unsigned_commands: bool = False


class PolicyConfig(Section):
    idle_timeout_s: float = seconds_field(300.0, DAY, "1 day")
    max_session_s: float = seconds_field(43200.0, 7 * DAY, "7 days")
    custody_timeout_s: float = seconds_field(86400.0, 30 * DAY, "30 days")
    retap_guard_s: float = seconds_field(2.0, 60.0, "1 minute", zero_ok=True)


class MqttConfig(Section):
    url: str = Field(
        "mqtts://localhost:8883", json_schema_extra={"flag": "--mqtt-url", "prompt": "broker URL (mqtts://HOST:PORT)"}
    )
    allow_insecure: bool = False
    protocol: Literal["5", "3.1.1"] = "5"
    client_id: str = ""
    """Empty in the file means the reader id; `Config` fills it in."""
    username: str = ""
    password_file: OptionalPath = None
    ca_file: OptionalPath = None
    cert_file: OptionalPath = Field(None, json_schema_extra={"provision": False})
    key_file: OptionalPath = Field(None, json_schema_extra={"provision": False})
    topic_prefix: str = "handoff/v1"

    @field_validator("url")
    @classmethod
    def _url_is_a_broker(cls, url: str) -> str:
        _split_broker_url(url)
        return url

    @field_validator("topic_prefix")
    @classmethod
    def _prefix_is_topic_levels(cls, prefix: str) -> str:
        if not prefix or prefix.startswith("/") or prefix.endswith("/") or any(c in prefix for c in "+#\x00"):
            raise ValueError(f"must be topic levels without '+', '#' or outer '/', got {prefix!r}")
        return prefix

    @model_validator(mode="after")
    def _coherent(self) -> MqttConfig:
        if not self.tls and not self.allow_insecure:
            raise KeyedValueError(
                "url", f"is unencrypted ({self.url!r}); use mqtts:// or set mqtt.allow_insecure = true"
            )
        if (self.cert_file is None) != (self.key_file is None):
            raise KeyedValueError("key_file" if self.key_file is None else "cert_file", "must be set with its pair")
        return self

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or (8883 if self.tls else 1883)

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts"


def _split_broker_url(url: str) -> None:
    """Only scheme, host and port: credentials, paths and queries would be silently ignored."""
    shown = repr(re.sub(r"//[^/?#]*@", "//***@", url))
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise ValueError(f"must not contain spaces or control characters, got {shown}")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ValueError(f"is not a broker URL ({exc}): {shown}") from None
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"has a bad port in {shown}") from None
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(f"must look like mqtts://HOST:PORT, got {shown}")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"must not carry credentials ({shown}); set mqtt.username and mqtt.password_file")
    if parts.path not in ("", "/") or parts.query or parts.fragment or "?" in url or "#" in url:
        raise ValueError(f"must be mqtts://HOST:PORT with no path, query or fragment, got {shown}")
    if port == 0:
        raise ValueError(f"has port 0 in {shown}; give the broker's port (1-65535)")


class OutboxConfig(Section):
    retention_days: float = Field(30.0, gt=0.0, le=3650.0, json_schema_extra={"bound": "10 years"})


class NfcReaderConfig(Section):
    kind: Literal["nfc"] = "nfc"
    path: str = Field("usb", json_schema_extra={"primary": True})
    """Any nfcpy path: usb, usb:072f:2200, tty:AMA0:pn532, udp:127.0.0.1:54321."""

    @field_validator("path")
    @classmethod
    def _path_given(cls, path: str) -> str:
        if not path:
            raise ValueError("must be an nfcpy path such as usb or udp:127.0.0.1:54321")
        return path


class PcscReaderConfig(Section):
    kind: Literal["pcsc"] = "pcsc"
    name: str = Field("", json_schema_extra={"primary": True})
    """A substring of the PC/SC reader name; "" for all."""
    auth: Literal["uid", "piv-cak"] = "uid"
    trust_anchors: OptionalPath = None
    lock_on_card_removal: bool = False

    @model_validator(mode="after")
    def _anchors_for_piv(self) -> PcscReaderConfig:
        if self.auth == "piv-cak" and self.trust_anchors is None:
            raise KeyedValueError("trust_anchors", 'is required when auth = "piv-cak"')
        return self


class KeyboardReaderConfig(Section):
    kind: Literal["keyboard"] = "keyboard"
    match: Annotated[str, AfterValidator(_not_blank)] = Field(json_schema_extra={"primary": True})
    """A substring of the input device name, or usb:VID:PID."""


class OsdpReaderConfig(Section):
    kind: Literal["osdp"] = "osdp"
    port: Annotated[str, AfterValidator(_not_blank)] = Field(json_schema_extra={"primary": True})
    address: int = Field(0, ge=0, le=126)
    baud: Literal[9600, 19200, 38400, 57600, 115200] = 9600
    scbk_file: FilePath


ReaderConfig = NfcReaderConfig | PcscReaderConfig | KeyboardReaderConfig | OsdpReaderConfig
READER_KINDS: Final[Mapping[str, type[ReaderConfig]]] = {
    "nfc": NfcReaderConfig,
    "pcsc": PcscReaderConfig,
    "keyboard": KeyboardReaderConfig,
    "osdp": OsdpReaderConfig,
}
AnyReader = Annotated[ReaderConfig, Field(discriminator="kind")]


class FeedbackConfig(Section):
    board: Name = "pi-cart-v1"


class AgentConfig(Section):
    """Logoff receipts from the attached device (docs/agent.md); absent means no agent."""

    flag_prefix: ClassVar[str] = "agent-"
    keys_file: FilePath
    confirm_s: float = seconds_field(10.0, 3600.0, "1 hour")
    require_confirmed: bool = False


class AuditConfig(Section):
    """Signed checkpoints of the event chain (docs/audit.md); absent means the chain is not signed."""

    flag_prefix: ClassVar[str] = "audit-"
    key_file: FilePath
    checkpoint_every: int = Field(100, gt=0, le=1_000_000)
    checkpoint_s: float = seconds_field(300.0, DAY, "1 day")


class Config(Section):
    appliance: ApplianceConfig
    policy: PolicyConfig = PolicyConfig()
    mqtt: MqttConfig = MqttConfig()
    outbox: OutboxConfig = OutboxConfig()
    readers: Annotated[tuple[AnyReader, ...], Field(strict=False)] = ()
    feedback: FeedbackConfig = FeedbackConfig()
    agent: AgentConfig | None = None
    audit: AuditConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _fill_identity(cls, raw: Any) -> Any:
        """reader_id defaults to this Pi's own id, and mqtt.client_id to the reader id."""
        if not isinstance(raw, dict) or not isinstance(raw.get("appliance"), dict):
            return raw
        appliance = dict(raw["appliance"])
        if not appliance.get("reader_id"):
            appliance["reader_id"] = default_reader_id()
        filled = {**raw, "appliance": appliance}
        mqtt = raw.get("mqtt", {})
        if isinstance(mqtt, dict) and not mqtt.get("client_id") and isinstance(appliance["reader_id"], str):
            filled["mqtt"] = {**mqtt, "client_id": appliance["reader_id"]}
        return filled


SECTIONS: Final[Mapping[str, type[Section]]] = {
    "appliance": ApplianceConfig,
    "policy": PolicyConfig,
    "mqtt": MqttConfig,
    "outbox": OutboxConfig,
    "feedback": FeedbackConfig,
    "agent": AgentConfig,
    "audit": AuditConfig,
}
"""The plain tables of the file, by name; `[[readers]]` are `READER_KINDS`."""


def config_path(given: str | None, env_name: str, default: Path) -> Path:
    """`-c` wins, then the environment variable, then the default."""
    if given:
        return Path(given)
    env = os.environ.get(env_name)
    return Path(env) if env else default


def resolve_config_path(given: str | None) -> Path:
    return config_path(given, CONFIG_ENV, DEFAULT_CONFIG_PATH)


def read_toml(path: Path) -> dict[str, Any]:
    """The file's tables; a missing, unreadable or malformed file is one `ConfigError` naming it."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def load_config(path: Path) -> Config:
    return parse_config(read_toml(path), path)


def parse_config(raw: Mapping[str, Any], source: Path) -> Config:
    """The whole file checked against the schema; the first problem becomes a `ConfigError` naming its key."""
    try:
        return Config.model_validate(dict(raw))
    except ValidationError as exc:
        key, problem = first_error(exc, Config, READER_KINDS)
        raise ConfigError.at(source, key, problem) from None


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


def _read_quietly(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


__all__: list[str] = [
    "READER_KINDS",
    "SECTIONS",
    "AgentConfig",
    "ApplianceConfig",
    "AuditConfig",
    "Config",
    "FeedbackConfig",
    "KeyboardReaderConfig",
    "MqttConfig",
    "NfcReaderConfig",
    "OsdpReaderConfig",
    "OutboxConfig",
    "PcscReaderConfig",
    "PolicyConfig",
    "ReaderConfig",
    "load_config",
    "parse_config",
    "resolve_config_path",
]
