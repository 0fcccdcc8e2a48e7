"""The agent's TOML configuration (docs/agent.md), validated completely before it starts.

The same rules as the appliance's file (`handoff.config`): strict types, unknown keys
refused, the first problem named by its key; `[mqtt]` is the appliance's table.
"""

# Annotations are evaluated as the module loads (no `from __future__ import annotations`): msgspec
# would otherwise parse each as a string on every start, a few ms of `handoff status` (bench/README.md).
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from msgspec import Meta

from handoff.config import (
    Check,
    FilePath,
    MqttConfig,
    Name,
    Section,
    TaggedSection,
    config_path,
    filled,
    read_toml,
    seconds,
)
from handoff.config_errors import validated

DEFAULT_AGENT_CONFIG_PATH: Final = Path("/etc/handoff/agent.toml")
AGENT_CONFIG_ENV: Final = "HANDOFF_AGENT_CONFIG"


class AgentIdentity(Section, frozen=True):
    site: Name
    device_id: Name
    agent_id: Name
    """Filled from the host name by `load_agent_config` when the file leaves it out."""
    appliance_key: FilePath
    """The cart's audit public key: only events it signed are acted on, whoever can publish."""
    key_file: FilePath = Path("/etc/handoff/agent.key")
    data_dir: FilePath = Path("/var/lib/handoff-agent")


def _argv(value: tuple[str, ...]) -> tuple[str, ...]:
    if not value or not value[0]:
        raise ValueError('must name a program to run, e.g. ["/usr/local/sbin/ehr-logoff", "{staff_id}"]')
    return value


class CommandAction(TaggedSection, tag="command", frozen=True):
    argv: Annotated[tuple[str, ...], Check(_argv)]
    timeout_s: Annotated[float, seconds(600.0, "10 minutes")] = 10.0


class LogindAction(TaggedSection, tag="logind", frozen=True):
    mode: Literal["lock", "terminate"] = "lock"


ActionConfig = CommandAction | LogindAction


class ActivityConfig(Section, frozen=True):
    kind: Literal["logind", "none"] = "logind"
    min_interval_s: Annotated[float, seconds(3600.0, "1 hour")] = 30.0


def _bus_address(value: str) -> str:
    if value and (":" not in value or not value.isprintable() or " " in value):
        raise ValueError(f"must be a D-Bus address such as unix:path=/run/user/1000/bus, got {value!r}")
    return value


class WarningConfig(Section, frozen=True):
    """The idle-lock warning on the screen (freedesktop Notifications on the desktop's session bus)."""

    kind: Literal["notify", "none"] = "notify"
    bus: Annotated[str, Check(_bus_address)] = ""
    """The desktop session's D-Bus address; "" for $DBUS_SESSION_BUS_ADDRESS."""


class AgentFileConfig(Section, frozen=True):
    agent: AgentIdentity
    actions: Annotated[tuple[ActionConfig, ...], Meta(min_length=1)]
    mqtt: MqttConfig = MqttConfig()
    activity: ActivityConfig = ActivityConfig()
    warning: WarningConfig = WarningConfig()


def resolve_agent_config_path(given: str | None) -> Path:
    """`-c` wins, then $HANDOFF_AGENT_CONFIG, then /etc/handoff/agent.toml."""
    return config_path(given, AGENT_CONFIG_ENV, DEFAULT_AGENT_CONFIG_PATH)


def load_agent_config(path: Path) -> AgentFileConfig:
    return validated(AgentFileConfig, _with_identity(read_toml(path)), path)


def _with_identity(raw: Mapping[str, Any]) -> dict[str, Any]:
    """agent_id defaults to the host name, and mqtt.client_id to `agent-<agent_id>`, so that the
    agent never takes over the appliance's MQTT session."""
    if not isinstance(raw.get("agent"), dict):
        return dict(raw)
    raw = filled(raw, "agent", "agent_id", lambda: socket.gethostname().split(".")[0] or "agent")
    agent_id = raw["agent"]["agent_id"]
    return filled(raw, "mqtt", "client_id", lambda: f"agent-{agent_id}") if isinstance(agent_id, str) else raw
