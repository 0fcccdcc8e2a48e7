"""The break-glass policy keys and the agent's [warning] table are checked like every other key:
an unknown key, a wrong type or a value out of range is one line naming it, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from handoff.agent.config import load_agent_config
from handoff.config import load_config
from handoff.errors import ConfigError
from handoff.provision.render import render_toml
from tests.kit.cli import CliRunner
from tests.kit.config import DEVICE, SITE, Layout


@pytest.mark.parametrize(
    ("policy", "culprit"),
    [
        ({"break_glass_hold_s": 0}, "policy.break_glass_hold_s must be greater than zero"),
        ({"break_glass_hold_s": 31}, "policy.break_glass_hold_s must be at most 30 (30 seconds)"),
        ({"break_glass_hold_s": "3"}, "policy.break_glass_hold_s must be a number"),
        ({"break_glass_unknown": "yes"}, "policy.break_glass_unknown must be true or false"),
        ({"break_glass_per_30d": -1}, "policy.break_glass_per_30d must be zero or more"),
        ({"break_glass_per_30d": 101}, "policy.break_glass_per_30d must be at most 100"),
        ({"break_glass_per_30d": 1.5}, "policy.break_glass_per_30d must be a whole number"),
        ({"break_glass_hold": 3}, "policy.break_glass_hold is not a known key"),
    ],
)
def test_a_bad_break_glass_key_is_named(appliance: Layout, policy: dict[str, object], culprit: str) -> None:
    appliance.configure(policy=policy)
    with pytest.raises(ConfigError, match=culprit.replace("(", r"\(").replace(")", r"\)")):
        load_config(appliance.config)


def test_the_defaults_and_a_bad_key_at_the_command_line(appliance: Layout, cli: CliRunner) -> None:
    policy = load_config(appliance.config).policy
    assert (policy.break_glass_hold_s, policy.break_glass_unknown, policy.break_glass_per_30d) == (3.0, False, 2)
    appliance.configure(policy={"break_glass_per_30d": "2"})
    result = cli("run", "-c", appliance.config)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"handoff: config {appliance.config}: policy.break_glass_per_30d must be a whole number, got a string ('2')"
    ]


@pytest.mark.parametrize(
    ("warning", "culprit"),
    [
        ({"kind": "popup"}, "warning.kind must be one of"),
        ({"bus": "/run/user/1000/bus"}, "warning.bus must be a D-Bus address"),
        ({"bus": "unix:path=/x y"}, "warning.bus must be a D-Bus address"),
        ({"when_s": 30}, "warning.when_s is not a known key"),
    ],
)
def test_a_bad_warning_key_is_named(tmp_path: Path, warning: dict[str, object], culprit: str) -> None:
    tables = {
        "agent": {"site": SITE, "device_id": DEVICE, "agent_id": "ws", "appliance_key": str(tmp_path / "a.pub")},
        "mqtt": {"url": "mqtt://127.0.0.1:1883", "allow_insecure": True},
        "warning": warning,
    }
    path = tmp_path / "agent.toml"
    path.write_text(render_toml(tables, {"actions": [{"kind": "logind"}]}))
    with pytest.raises(ConfigError, match=culprit):
        load_agent_config(path)
