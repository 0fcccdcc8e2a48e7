"""The ledger's TOML configuration (docs/ledger.md), validated as the appliance's is."""

from __future__ import annotations

import re
from collections.abc import Mapping
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Annotated, Any, Final, Literal, get_args
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from msgspec import Meta

from handoff.config import (
    Check,
    FilePath,
    MqttConfig,
    OptionalPath,
    Section,
    config_path,
    filled,
    read_toml,
    seconds,
    valid_name,
)
from handoff.config_errors import KeyedValueError, validated

DEFAULT_LEDGER_CONFIG_PATH: Final = Path("/etc/handoff/ledger.toml")
LEDGER_CONFIG_ENV: Final = "HANDOFF_LEDGER_CONFIG"
DAY: Final = 86400.0
CLOCK: Final = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


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


def _time_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f'must be an IANA time zone, e.g. "America/New_York", got {name!r}') from None
    return name


def _clock(text: str) -> str:
    if not CLOCK.fullmatch(text):
        raise ValueError(f'must be a time of day "HH:MM" (00:00 to 23:59), got {text!r}')
    return text


def _site_pair(sites: list[str]) -> list[str]:
    for index, site in enumerate(sites):
        try:
            valid_name(site)
        except ValueError as exc:
            raise KeyedValueError(f"[{index}]", str(exc)) from None
    if len(sites) != 2 or sites[0] == sites[1]:
        raise ValueError(f'must name two different sites, e.g. ["north", "south"], got {sites!r}')
    return sites


class Travel(Section, frozen=True):
    """The shortest time anyone takes between two sites: one badge at both faster is not one person."""

    sites: Annotated[list[str], Check(_site_pair)]
    min_s: Annotated[float, seconds(DAY, "1 day")] = 900.0


class Shift(Section, frozen=True):
    """When a role works, in `anomalies.time_zone`: a checkout outside it is `off_hours`. An `end`
    before `start` runs past midnight (a night shift, counted on the day it starts)."""

    role: Annotated[str, Meta(min_length=1, max_length=255)]
    start: Annotated[str, Check(_clock)]
    end: Annotated[str, Check(_clock)]
    days: Annotated[list[Day], Meta(min_length=1)] = msgspec.field(default_factory=lambda: list(get_args(Day)))


class AnomalySettings(Section, frozen=True):
    """Which anomalies the ledger looks for in the trusted events (docs/ledger.md), with their
    thresholds, and which it answers by ending the older session. Each is off until set."""

    concurrent_use: bool = False
    repeated_rejections: Annotated[int, Meta(ge=0, le=1000)] = 0
    """How many `tap_rejected` at one device within `rejections_within_s` open one; 0 is off."""
    rejections_within_s: Annotated[float, seconds(DAY, "1 day")] = 60.0
    travel: tuple[Travel, ...] = ()
    shifts: tuple[Shift, ...] = ()
    time_zone: Annotated[str, Check(_time_zone)] = "UTC"
    respond: list[Literal["concurrent_use", "impossible_travel", "off_hours"]] = msgspec.field(default_factory=list)
    """The anomalies answered with a signed `cmd/force_logoff` to the device of the older session."""

    def check(self) -> None:
        detected = {
            "concurrent_use": self.concurrent_use,
            "impossible_travel": bool(self.travel),
            "off_hours": bool(self.shifts),
        }
        for kind in self.respond:
            if not detected[kind]:
                raise KeyedValueError("respond", f"names {kind}, which is not detected: configure it first")
        pairs = [frozenset(travel.sites) for travel in self.travel]
        if len(set(pairs)) != len(pairs):
            raise KeyedValueError("travel", "names the same pair of sites twice")


class LedgerSettings(Section, frozen=True):
    database: Annotated[str, Check(_database_url)] = "sqlite:////var/lib/handoff/ledger.db"
    overdue_after_s: Annotated[float, seconds(30 * DAY, "30 days")] = 129600.0
    offline_after_s: Annotated[float, seconds(DAY, "1 day")] = 180.0
    holds_many: Annotated[int, Meta(ge=1, le=1000)] = 2
    max_clock_skew_s: Annotated[float, seconds(DAY, "1 day")] = 300.0
    audit_keys: OptionalPath = None
    allow_untrusted: bool = False
    """Believe unsigned and unenrolled messages as well: a lab bench only (docs/security.md)."""
    command_key_file: OptionalPath = None
    """The Ed25519 private key the ledger signs its automated `cmd/force_logoff` with."""
    anomalies: AnomalySettings = AnomalySettings()
    break_glass_per_30d: Annotated[int, Meta(ge=0, le=100)] = 2
    """Break-glass uses per staff member over 30 days, on any device, beyond which a review is
    marked over the limit (the appliances' own `[policy]` limit counts per device)."""
    retain_days: Annotated[int, Meta(ge=1, le=36500)] = 2190
    """Events older than this are pruned where a signed checkpoint anchors what remains (retention.py)."""

    def check(self) -> None:
        if self.anomalies.respond and self.command_key_file is None:
            raise KeyedValueError("command_key_file", "is required when anomalies.respond names an anomaly")


class LedgerMqttConfig(MqttConfig, frozen=True):
    shared_group: str = ""
    """Subscribe through `$share/<group>/` so that several ledgers split the stream."""

    def check(self) -> None:
        """Shared subscriptions are MQTT 5: 3.1.1 brokers accept `$share/...` and deliver nothing."""
        super().check()
        if self.shared_group and self.protocol != "5":
            raise KeyedValueError("shared_group", 'needs protocol = "5": MQTT 3.1.1 has no shared subscriptions')


class ConsoleConfig(Section, frozen=True):
    """Where `handoff ledger serve` listens, and how it is reached.

    The console speaks TLS itself when `cert_file` and `key_file` are set; otherwise it expects a
    TLS-terminating reverse proxy in front of it on the same host, so it listens on loopback only.
    Its cookies are `Secure` either way; `allow_insecure` (plain HTTP to a browser on this very
    machine, for a demo or a lab bench) is the one case without, and is refused off loopback.
    """

    listen: Annotated[str, Check(_listen_address)] = "127.0.0.1:8080"
    cert_file: OptionalPath = None
    key_file: OptionalPath = None
    allow_insecure: bool = False
    trusted_proxies: Annotated[list[str], Check(_proxies)] = msgspec.field(default_factory=list)
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

    def check(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise KeyedValueError("key_file" if self.key_file is None else "cert_file", "must be set with its pair")
        loopback = _is_loopback(self.host)
        if not self.tls and not loopback:
            raise KeyedValueError(
                "listen", f"is {self.listen!r}, off loopback without TLS: set console.cert_file and console.key_file"
            )
        if self.allow_insecure and not loopback:
            raise KeyedValueError("allow_insecure", 'is only for a console on loopback (listen = "127.0.0.1:PORT")')


def _issuer(url: str) -> str:
    """HTTPS, as OpenID Connect Discovery requires; plain HTTP only on loopback (a lab bench)."""
    parts = urlsplit(url)
    if not parts.hostname or parts.scheme not in ("https", "http") or parts.query or parts.fragment:
        raise ValueError(
            f'must be the provider\'s issuer URL, e.g. "https://login.example.org/realms/hospital", got {url!r}'
        )
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ValueError(f"must be https:// off loopback, got {url!r}")
    return url.rstrip("/")


def _role_values(roles: dict[str, str]) -> dict[str, str]:
    if not roles:
        raise ValueError('must map at least one claim value to a role, e.g. {"biomed-admins" = "admin"}')
    for value, role in roles.items():
        if role not in ("viewer", "admin"):
            raise ValueError(f'maps {value!r} to {role!r}: a role is "viewer" or "admin"')
    return roles


def _scopes(scopes: list[str]) -> list[str]:
    if "openid" not in scopes:
        raise ValueError(f'must include "openid", got {scopes!r}')
    return scopes


class OidcConfig(Section, frozen=True):
    """Sign-in through the hospital's OpenID Connect provider (docs/console.md): where it is, how
    the console is registered there, and which claim values make a viewer or an admin."""

    name: Annotated[str, Meta(min_length=1, max_length=64)]
    """What the login page's button says: "Sign in with NAME"."""
    issuer: Annotated[str, Check(_issuer)]
    client_id: Annotated[str, Meta(min_length=1, max_length=255)]
    client_secret_file: FilePath
    roles: Annotated[dict[str, str], Check(_role_values)]
    roles_claim: Annotated[str, Meta(min_length=1, max_length=64)] = "groups"
    scopes: Annotated[list[str], Check(_scopes)] = msgspec.field(default_factory=lambda: ["openid", "profile"])


class LedgerConfig(Section, frozen=True):
    ledger: LedgerSettings = LedgerSettings()
    mqtt: LedgerMqttConfig = LedgerMqttConfig()
    console: ConsoleConfig = ConsoleConfig()
    oidc: OidcConfig | None = None


def resolve_ledger_config_path(given: str | None) -> Path:
    """`-c` wins, then $HANDOFF_LEDGER_CONFIG, then /etc/handoff/ledger.toml."""
    return config_path(given, LEDGER_CONFIG_ENV, DEFAULT_LEDGER_CONFIG_PATH)


def load_ledger_config(path: Path) -> LedgerConfig:
    return parse_ledger_config(read_toml(path), path)


def parse_ledger_config(raw: Mapping[str, Any], source: Path) -> LedgerConfig:
    """The whole file checked against the schema; mqtt.client_id defaults to "handoff-ledger"."""
    return validated(LedgerConfig, filled(raw, "mqtt", "client_id", lambda: "handoff-ledger"), source)
