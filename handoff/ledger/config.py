"""The ledger's TOML configuration (SPEC section 10), validated as the appliance's is."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Final

from pydantic import AfterValidator, Field, ValidationError, model_validator

from handoff.config import MqttConfig, OptionalPath, Section, config_path, read_toml, seconds_field
from handoff.config_errors import first_error
from handoff.errors import ConfigError

DEFAULT_LEDGER_CONFIG_PATH: Final = Path("/etc/handoff/ledger.toml")
LEDGER_CONFIG_ENV: Final = "HANDOFF_LEDGER_CONFIG"
DAY: Final = 86400.0


def _database_url(url: str) -> str:
    if not url.startswith(("sqlite:///", "postgresql://", "postgresql+psycopg://")):
        raise ValueError(f'must be "sqlite:////path/ledger.db" or "postgresql://user@host:5432/db", got {url!r}')
    return url


class LedgerSettings(Section):
    database: Annotated[str, AfterValidator(_database_url)] = "sqlite:////var/lib/handoff/ledger.db"
    overdue_after_s: float = seconds_field(129600.0, 30 * DAY, "30 days")
    offline_after_s: float = seconds_field(180.0, DAY, "1 day")
    holds_many: int = Field(2, ge=1, le=1000)
    audit_keys: OptionalPath = None


class LedgerMqttConfig(MqttConfig):
    shared_group: str = ""
    """Subscribe through `$share/<group>/` so that several ledgers split the stream."""


class ConsoleConfig(Section):
    listen: str = "127.0.0.1:8080"


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
    """`-c` wins, then $HANDOFF_LEDGER_CONFIG, then /etc/handoff/ledger.toml (SPEC section 10)."""
    return config_path(given, LEDGER_CONFIG_ENV, DEFAULT_LEDGER_CONFIG_PATH)


def load_ledger_config(path: Path) -> LedgerConfig:
    raw = read_toml(path)
    try:
        return LedgerConfig.model_validate(raw)
    except ValidationError as exc:
        key, problem = first_error(exc, LedgerConfig, {})
        raise ConfigError.at(path, key, problem) from None
