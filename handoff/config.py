"""The appliance's TOML configuration, declared once and validated completely before anything starts.

A cart that boots with a typo in its config must say so at once and name the key, rather than
run with a silent default and fail a clinician later. Every key of `handoff.toml` is a field of
one of the msgspec structs below, with its type, default and range; unknown keys are refused.
The allowed keys, the error messages (`handoff.config_errors`) and `handoff provision`'s flags
are all derived from these structs, so they cannot drift apart. msgspec rather than pydantic:
the appliance validates one small file at start-up, and pydantic cost it about 19 MB of its
resident set and most of `handoff status`'s start-up time (bench/README.md).
"""

# Annotations are evaluated as the module loads (no `from __future__ import annotations`): msgspec
# would otherwise parse each as a string on every start, a few ms of `handoff status` (bench/README.md).
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Annotated, Any, ClassVar, Final, Literal
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta

from handoff.config_errors import BLANK_PATH, KeyedValueError, validated
from handoff.core.policy import AgentPolicy, Policy
from handoff.errors import ConfigError

DEFAULT_CONFIG_PATH: Final = Path("/etc/handoff/handoff.toml")
CONFIG_ENV: Final = "HANDOFF_CONFIG"

DAY: Final = 86400.0


class Check:
    """A rule of one key beyond its type, declared on the type (`Annotated[str, Check(rule)]`).

    `rule` takes the converted value and returns the value to keep, or raises `ValueError` with
    the problem (a `KeyedValueError` blames an item of the value, e.g. `[1]`).
    """

    __slots__ = ("rule",)

    def __init__(self, rule: Callable[[Any], Any]) -> None:
        self.rule = rule


class Section(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A table of a config file: no key that is not declared, frozen, and each key's `Check` run
    once the table is converted (msgspec converts strictly: no "5" for 5, no "yes" for true)."""

    flag_prefix: ClassVar[str] = ""
    """Prefix of `handoff provision`'s flags for this table's keys, where a bare key would be ambiguous."""

    def __post_init__(self) -> None:
        for name, rule in _rules(type(self)):
            value = getattr(self, name)
            try:
                kept = rule(value)
            except KeyedValueError as exc:
                raise KeyedValueError(f"{name}{exc.key}", exc.problem) from None
            except ValueError as exc:
                raise KeyedValueError(name, str(exc)) from None
            if kept is not value:
                msgspec.structs.force_setattr(self, name, kept)
        self.check()

    def check(self) -> None:
        """Rules between this table's keys, run after each key's own; raise `KeyedValueError`."""


@cache
def _rules(section: type[Section]) -> tuple[tuple[str, Callable[[Any], Any]], ...]:
    return tuple(
        (field.name, meta.rule)
        for field in msgspec.structs.fields(section)
        for meta in getattr(field.type, "__metadata__", ())
        if isinstance(meta, Check)
    )


class TaggedSection(Section, tag_field="kind", frozen=True):
    """One of several kinds of table in an array (`[[readers]]`, `[[actions]]`), told apart by `kind`."""

    @property
    def kind(self) -> str:
        return str(self.__struct_config__.tag)


def valid_name(value: str) -> str:
    """A non-empty identifier safe inside an MQTT topic level and a URN."""
    if not value or any(ch in value for ch in "/+#:\x00 ") or not value.isprintable():
        raise ValueError(f"must be non-empty without spaces, '/', '+', '#' or ':', got {value!r}")
    return value


def _not_blank(value: object) -> object:
    if value is BLANK_PATH or value == "":
        raise ValueError("must not be empty")
    return value


def _blank_is_none(value: Path | None) -> Path | None:
    """An empty string in TOML means "not set" for an optional file."""
    return None if value is BLANK_PATH else value


def seconds(at_most: float, bound: str, *, zero_ok: bool = False) -> Meta:
    """A timer: positive (or zero where the key allows it), finite, and below a sane bound named in the error."""
    if zero_ok:
        return Meta(ge=0.0, le=at_most, extra={"bound": bound})
    return Meta(gt=0.0, le=at_most, extra={"bound": bound})


Name = Annotated[str, Check(valid_name)]
FilePath = Annotated[Path, Check(_not_blank)]
"""A path from a TOML string; "" is refused."""
OptionalPath = Annotated[Path | None, Check(_blank_is_none)]
"""A path from a TOML string; "" means not set."""
NotBlank = Annotated[str, Check(_not_blank)]


class ApplianceConfig(Section, frozen=True):
    site: Annotated[Name, Meta(extra={"prompt": "site (e.g. st-elsewhere)"})]
    device_id: Annotated[Name, Meta(extra={"prompt": "device id of the attached device (e.g. WOW-3N-07)"})]
    reader_id: Name
    """Filled from the Pi's serial or the machine id by `parse_config` when the file leaves it out."""
    data_dir: FilePath = Path("/var/lib/handoff")
    badge_secret_file: Annotated[FilePath, Meta(extra={"provision": False})] = Path("/etc/handoff/badge.key")
    command_key_file: OptionalPath = None
    allow_unsigned_commands: bool = False


class PolicyConfig(Section, frozen=True):
    idle_timeout_s: Annotated[float, seconds(DAY, "1 day")] = 300.0
    max_session_s: Annotated[float, seconds(7 * DAY, "7 days")] = 43200.0
    custody_timeout_s: Annotated[float, seconds(30 * DAY, "30 days")] = 86400.0
    retap_guard_s: Annotated[float, seconds(60.0, "1 minute", zero_ok=True)] = 2.0
    break_glass_hold_s: Annotated[float, seconds(30.0, "30 seconds")] = 3.0
    break_glass_unknown: bool = False
    break_glass_per_30d: Annotated[int, Meta(ge=0, le=100)] = 2

    def for_core(self) -> Policy:
        """Every key of `[policy]` is a rule of the core, under the same name."""
        return Policy(**msgspec.structs.asdict(self))


def _split_broker_url(url: str) -> str:
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
    return url


def _topic_levels(prefix: str) -> str:
    if not prefix or prefix.startswith("/") or prefix.endswith("/") or any(c in prefix for c in "+#\x00"):
        raise ValueError(f"must be topic levels without '+', '#' or outer '/', got {prefix!r}")
    return prefix


class MqttConfig(Section, frozen=True):
    url: Annotated[
        str,
        Check(_split_broker_url),
        Meta(extra={"flag": "--mqtt-url", "prompt": "broker URL (mqtts://HOST:PORT)"}),
    ] = "mqtts://localhost:8883"
    allow_insecure: bool = False
    protocol: Literal["5", "3.1.1"] = "5"
    client_id: str = ""
    """Empty in the file means the reader id; `parse_config` fills it in."""
    username: str = ""
    password_file: OptionalPath = None
    ca_file: OptionalPath = None
    cert_file: Annotated[OptionalPath, Meta(extra={"provision": False})] = None
    key_file: Annotated[OptionalPath, Meta(extra={"provision": False})] = None
    topic_prefix: Annotated[str, Check(_topic_levels)] = "handoff/v1"

    def check(self) -> None:
        if not self.tls and not self.allow_insecure:
            raise KeyedValueError(
                "url", f"is unencrypted ({self.url!r}); use mqtts:// or set mqtt.allow_insecure = true"
            )
        if (self.cert_file is None) != (self.key_file is None):
            raise KeyedValueError("key_file" if self.key_file is None else "cert_file", "must be set with its pair")

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or (8883 if self.tls else 1883)

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts"


class OutboxConfig(Section, frozen=True):
    retention_days: Annotated[float, Meta(gt=0.0, le=3650.0, extra={"bound": "10 years"})] = 30.0


def _nfc_path(path: str) -> str:
    if not path:
        raise ValueError("must be an nfcpy path such as usb or udp:127.0.0.1:54321")
    return path


class NfcReaderConfig(TaggedSection, tag="nfc", frozen=True):
    path: Annotated[str, Check(_nfc_path), Meta(extra={"primary": True})] = "usb"
    """Any nfcpy path: usb, usb:072f:2200, tty:AMA0:pn532, udp:127.0.0.1:54321."""


class PcscReaderConfig(TaggedSection, tag="pcsc", frozen=True):
    name: Annotated[str, Meta(extra={"primary": True})] = ""
    """A substring of the PC/SC reader name; "" for all."""
    auth: Literal["uid", "piv-cak"] = "uid"
    trust_anchors: OptionalPath = None
    lock_on_card_removal: bool = False

    def check(self) -> None:
        if self.auth == "piv-cak" and self.trust_anchors is None:
            raise KeyedValueError("trust_anchors", 'is required when auth = "piv-cak"')


class KeyboardReaderConfig(TaggedSection, tag="keyboard", frozen=True):
    match: Annotated[NotBlank, Meta(extra={"primary": True})]
    """A substring of the input device name, or usb:VID:PID."""


class OsdpReaderConfig(TaggedSection, tag="osdp", frozen=True):
    port: Annotated[NotBlank, Meta(extra={"primary": True})]
    scbk_file: FilePath
    address: Annotated[int, Meta(ge=0, le=126)] = 0
    baud: Literal[9600, 19200, 38400, 57600, 115200] = 9600


ReaderConfig = NfcReaderConfig | PcscReaderConfig | KeyboardReaderConfig | OsdpReaderConfig
READER_KINDS: Final[Mapping[str, type[ReaderConfig]]] = {
    str(kind.__struct_config__.tag): kind
    for kind in (NfcReaderConfig, PcscReaderConfig, KeyboardReaderConfig, OsdpReaderConfig)
}


class FeedbackConfig(Section, frozen=True):
    board: Name = "pi-cart-v1"


class AgentConfig(Section, frozen=True):
    """Logoff receipts from the attached device (docs/agent.md); absent means no agent."""

    flag_prefix: ClassVar[str] = "agent-"
    keys_file: FilePath
    confirm_s: Annotated[float, seconds(3600.0, "1 hour")] = 10.0
    require_confirmed: bool = False

    def for_core(self) -> AgentPolicy:
        return AgentPolicy(self.confirm_s, self.require_confirmed)


class AuditConfig(Section, frozen=True):
    """Signed checkpoints of the event chain (docs/audit.md); absent means the chain is not signed."""

    flag_prefix: ClassVar[str] = "audit-"
    key_file: FilePath
    checkpoint_every: Annotated[int, Meta(gt=0, le=1_000_000)] = 100
    checkpoint_s: Annotated[float, seconds(DAY, "1 day")] = 300.0


class Config(Section, frozen=True):
    appliance: ApplianceConfig
    policy: PolicyConfig = PolicyConfig()
    mqtt: MqttConfig = MqttConfig()
    outbox: OutboxConfig = OutboxConfig()
    readers: tuple[ReaderConfig, ...] = ()
    feedback: FeedbackConfig = FeedbackConfig()
    agent: AgentConfig | None = None
    audit: AuditConfig | None = None


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
    return validated(Config, _with_identity(raw), source)


def filled(raw: Mapping[str, Any], table: str, key: str, default: Callable[[], str]) -> dict[str, Any]:
    """`raw` with `table.key` set to `default()` where the file leaves it out or empty; a table
    of the wrong type is left for the schema to refuse."""
    section = raw.get(table, {})
    if not isinstance(section, dict) or section.get(key):
        return dict(raw)
    return {**raw, table: {**section, key: default()}}


def _with_identity(raw: Mapping[str, Any]) -> dict[str, Any]:
    """reader_id defaults to this Pi's own id, and mqtt.client_id to the reader id."""
    if not isinstance(raw.get("appliance"), dict):
        return dict(raw)
    raw = filled(raw, "appliance", "reader_id", default_reader_id)
    reader_id = raw["appliance"]["reader_id"]
    return filled(raw, "mqtt", "client_id", lambda: reader_id) if isinstance(reader_id, str) else raw


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
