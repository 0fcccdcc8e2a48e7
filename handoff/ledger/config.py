"""The ledger's TOML configuration (docs/ledger.md), validated as the appliance's is."""

from __future__ import annotations

from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Annotated, Any, Final

from pydantic import AfterValidator, Field, ValidationError, model_validator

from handoff.config import MqttConfig, OptionalPath, Section, config_path, read_toml, seconds_field
from handoff.config_errors import KeyedValueError, first_error
from handoff.errors import ConfigError

DEFAULT_LEDGER_CONFIG_PATH: Final = Path("/etc/handoff/ledger.toml")
LEDGER_CONFIG_ENV: Final = "HANDOFF_LEDGER_CONFIG"
DAY: Final = 86400.0


def _listen_address(listen: str) -> str:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f'must be "HOST:PORT", e.g. "127.0.0.1:8080", got {listen!r}')
    return listen


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def _database_url(url: str) -> str:
    if not url.startswith(("sqlite:///", "postgresql://", "postgresql+psycopg://")):
        raise ValueError(f'must be "sqlite:////path/ledger.db" or "postgresql://user@host:5432/db", got {url!r}')
    return url


def _proxies(proxies: list[str]) -> list[str]:
    for proxy in proxies:
        try:
            ip_network(proxy, strict=False)
        except ValueError:
            raise ValueError(f'must list IP addresses or networks, e.g. ["127.0.0.1"], got {proxy!r}') from None
    return proxies


class LedgerSettings(Section):
    database: Annotated[str, AfterValidator(_database_url)] = "sqlite:////var/lib/handoff/ledger.db"
    overdue_after_s: float = seconds_field(129600.0, 30 * DAY, "30 days")
    offline_after_s: float = seconds_field(180.0, DAY, "1 day")
    holds_many: int = Field(2, ge=1, le=1000)
    max_clock_skew_s: float = seconds_field(300.0, DAY, "1 day")
    audit_keys: OptionalPath = None
    allow_untrusted: bool = False
    """Believe unsigned and unenrolled messages as well: a lab bench only (docs/security.md)."""
    break_glass_per_30d: int = Field(2, ge=0, le=100)
    """Break-glass uses per staff member over 30 days, on any device, beyond which a review is
    marked over the limit (the appliances' own `[policy]` limit counts per device)."""
    retain_days: int = Field(2190, ge=1, le=36500)
    """Events older than this are pruned where a signed checkpoint anchors what remains (retention.py)."""


class LedgerMqttConfig(MqttConfig):
    shared_group: str = ""
    """Subscribe through `$share/<group>/` so that several ledgers split the stream."""

    @model_validator(mode="after")
    def _shared_needs_v5(self) -> LedgerMqttConfig:
        """Shared subscriptions are MQTT 5: 3.1.1 brokers accept `$share/...` and deliver nothing."""
        if self.shared_group and self.protocol != "5":
            raise KeyedValueError("shared_group", 'needs protocol = "5": MQTT 3.1.1 has no shared subscriptions')
        return self


class ConsoleConfig(Section):
    """Where `handoff ledger serve` listens, and how it is reached.

    The console speaks TLS itself when `cert_file` and `key_file` are set; otherwise it expects a
    TLS-terminating reverse proxy in front of it on the same host, so it listens on loopback only.
    Its cookies are `Secure` either way; `allow_insecure` (plain HTTP to a browser on this very
    machine, for a demo or a lab bench) is the one case without, and is refused off loopback.
    """

    listen: Annotated[str, AfterValidator(_listen_address)] = "127.0.0.1:8080"
    cert_file: OptionalPath = None
    key_file: OptionalPath = None
    allow_insecure: bool = False
    trusted_proxies: Annotated[list[str], AfterValidator(_proxies)] = Field(default_factory=list)
    """The reverse proxies whose `X-Forwarded-For` names the client (for the login limit and
    the audit trail). None by default: anyone on the console's own host could otherwise name
    any address and escape the per-address limit."""

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    @property
    def tls(self) -> bool:
        return self.cert_file is not None

    @model_validator(mode="after")
    def _coherent(self) -> ConsoleConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise KeyedValueError("key_file" if self.key_file is None else "cert_file", "must be set with its pair")
        loopback = _is_loopback(self.host)
        if not self.tls and not loopback:
            raise KeyedValueError(
                "listen", f"is {self.listen!r}, off loopback without TLS: set console.cert_file and console.key_file"
            )
        if self.allow_insecure and not loopback:
            raise KeyedValueError("allow_insecure", 'is only for a console on loopback (listen = "127.0.0.1:PORT")')
        return self


class LedgerConfig(Section):
    ledger: LedgerSettings = LedgerSettings()
    mqtt: LedgerMqttConfig = LedgerMqttConfig()
    console: ConsoleConfig = ConsoleConfig()

    @model_validator(mode="before")
    @classmethod
    def _default_client_id(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and isinstance(raw.get("mqtt", {}), dict) and not raw.get("mqtt", {}).get("client_id"):
            return {**raw, "mqtt": {**raw.get("mqtt", {}), "client_id": "handoff-ledger"}}
        return raw


def resolve_ledger_config_path(given: str | None) -> Path:
    """`-c` wins, then $HANDOFF_LEDGER_CONFIG, then /etc/handoff/ledger.toml."""
    return config_path(given, LEDGER_CONFIG_ENV, DEFAULT_LEDGER_CONFIG_PATH)


def load_ledger_config(path: Path) -> LedgerConfig:
    raw = read_toml(path)
    try:
        return LedgerConfig.model_validate(raw)
    except ValidationError as exc:
        key, problem = first_error(exc, LedgerConfig, {})
        raise ConfigError.at(path, key, problem) from None
