"""The agent's TOML configuration (docs/agent.md), validated completely before it starts.

The same rules as the appliance's file (`handoff.config`): strict types, unknown keys
refused, the first problem named by its key; `[mqtt]` is the appliance's table.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, Field, ValidationError, model_validator

from handoff.config import FilePath, MqttConfig, Name, Section, config_path, read_toml, seconds_field
from handoff.config_errors import first_error
from handoff.errors import ConfigError

DEFAULT_AGENT_CONFIG_PATH: Final = Path("/etc/handoff/agent.toml")
AGENT_CONFIG_ENV: Final = "HANDOFF_AGENT_CONFIG"


class AgentIdentity(Section):
    site: Name
    device_id: Name
    agent_id: Name
    """Filled from the host name when the file leaves it out."""
    key_file: FilePath = Path("/etc/handoff/agent.key")
    data_dir: FilePath = Path("/var/lib/handoff-agent")


def _argv(value: tuple[str, ...]) -> tuple[str, ...]:
    if not value or not value[0]:
        raise ValueError('must name a program to run, e.g. ["/usr/local/sbin/ehr-logoff", "{staff_id}"]')
    return value


class CommandAction(Section):
    kind: Literal["command"] = "command"
    argv: Annotated[tuple[str, ...], Field(strict=False), AfterValidator(_argv)]
    timeout_s: float = seconds_field(10.0, 600.0, "10 minutes")


class LogindAction(Section):
    kind: Literal["logind"] = "logind"
    mode: Literal["lock", "terminate"] = "lock"


ActionConfig = CommandAction | LogindAction
ACTION_KINDS: Final[Mapping[str, type[ActionConfig]]] = {"command": CommandAction, "logind": LogindAction}
AnyAction = Annotated[ActionConfig, Field(discriminator="kind")]


class ActivityConfig(Section):
    kind: Literal["logind", "none"] = "logind"
    min_interval_s: float = seconds_field(30.0, 3600.0, "1 hour")


class AgentFileConfig(Section):
    agent: AgentIdentity
    mqtt: MqttConfig = MqttConfig()
    actions: Annotated[tuple[AnyAction, ...], Field(strict=False, min_length=1)]
    activity: ActivityConfig = ActivityConfig()

    @model_validator(mode="before")
    @classmethod
    def _fill_identity(cls, raw: Any) -> Any:
        """agent_id defaults to the host name, and mqtt.client_id to `agent-<agent_id>`, so
        that the agent never takes over the appliance's MQTT session."""
        if not isinstance(raw, dict) or not isinstance(raw.get("agent"), dict):
            return raw
        agent = dict(raw["agent"])
        if not agent.get("agent_id"):
            agent["agent_id"] = socket.gethostname().split(".")[0] or "agent"
        filled = {**raw, "agent": agent}
        mqtt = raw.get("mqtt", {})
        if isinstance(mqtt, dict) and not mqtt.get("client_id") and isinstance(agent["agent_id"], str):
            filled["mqtt"] = {**mqtt, "client_id": f"agent-{agent['agent_id']}"}
        return filled


def resolve_agent_config_path(given: str | None) -> Path:
    """`-c` wins, then $HANDOFF_AGENT_CONFIG, then /etc/handoff/agent.toml."""
    return config_path(given, AGENT_CONFIG_ENV, DEFAULT_AGENT_CONFIG_PATH)


def load_agent_config(path: Path) -> AgentFileConfig:
    raw = read_toml(path)
    try:
        return AgentFileConfig.model_validate(raw)
    except ValidationError as exc:
        key, problem = first_error(exc, AgentFileConfig, ACTION_KINDS)
        raise ConfigError.at(path, key, problem) from None
