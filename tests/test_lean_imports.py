"""Each command loads only what it needs: a Pi answering `handoff status` must not load the
ledger's web stack, and the pure core loads no config layer (docs/install.md).

These tests assert which modules are absent, not how long anything takes: the timings are
bench/startup.py's job.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from handoff.config import AgentConfig, PolicyConfig
from handoff.core.policy import AgentPolicy, Policy
from tests.kit.cli import REPO
from tests.kit.config import Layout
from tests.kit.imports import handoff_modules_after, import_cycles, modules_after, package_imports

LEDGER = {"sqlalchemy", "alembic", "psycopg", "argon2", "starlette", "uvicorn", "jinja2", "multipart"}
APPLIANCE_HARDWARE = {"nfc", "smartcard", "gpiozero", "evdev", "pyudev", "osdp", "serial"}
AGENT = {"jeepney"}


def loaded(names: set[str], wanted: set[str]) -> set[str]:
    return {name for name in names if name.partition(".")[0] in wanted}


def test_importing_the_cli_loads_no_command() -> None:
    names = modules_after("import handoff.cli.main")
    assert loaded(names, LEDGER | APPLIANCE_HARDWARE | AGENT | {"msgspec", "paho", "cryptography"}) == set()
    assert {name for name in names if name.startswith("handoff.cli.")} == {"handoff.cli.main"}


@pytest.mark.parametrize("argv", [["--version"], ["--help"]])
def test_version_and_help_load_no_command_group(argv: list[str]) -> None:
    code = f"import sys\nfrom handoff.cli.main import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass"
    names = modules_after(code)
    assert {name for name in names if name.startswith("handoff.cli.")} == {"handoff.cli.main"}
    assert loaded(names, {"msgspec", "sqlite3"}) == set()


def test_status_loads_neither_the_ledger_nor_reader_drivers(appliance: Layout) -> None:
    names = handoff_modules_after(["status", "-c", str(appliance.config)])
    assert loaded(names, LEDGER | APPLIANCE_HARDWARE | AGENT | {"paho", "pydantic"}) == set()
    assert "handoff.cli.status" in names, "the test must have run the command it names"


def test_the_appliance_loads_nothing_of_the_ledger_or_the_agent() -> None:
    names = modules_after("import handoff.cli.run")
    assert loaded(names, LEDGER | AGENT | {"pydantic"}) == set()
    assert "cryptography.hazmat.primitives.serialization" not in names, "its SSH, cipher and bcrypt modules"
    assert "handoff.runtime.wiring" in names


def test_a_ledger_query_loads_no_web_server_and_no_broker_client() -> None:
    names = modules_after("import handoff.cli.ledger_commands\nimport handoff.cli.ledger_trust")
    assert loaded(names, {"starlette", "uvicorn", "jinja2", "multipart", "paho"} | APPLIANCE_HARDWARE) == set()
    assert "sqlalchemy" in names


def test_the_ledgers_parsers_load_nothing_of_the_database_layer() -> None:
    assert loaded(modules_after("import handoff.cli.ledger"), LEDGER | {"paho", "cryptography"}) == set()


def test_what_ledger_run_imports_before_its_handler_starts_the_mqtt_session_holds_no_database_layer() -> None:
    """The session process connects while the parent loads SQLAlchemy and the ingest modules:
    what `ledger run` imports before its handler starts the session holds none of them."""
    names = modules_after("import handoff.cli.ledger, handoff.cli.ledger_run")
    assert loaded(names, LEDGER) == set()
    assert "handoff.ledger.receiver" in names


def test_the_agent_loads_nothing_of_the_ledger_or_the_reader_drivers() -> None:
    names = modules_after("import handoff.cli.agent\nimport handoff.agent.service")
    assert loaded(names, LEDGER | APPLIANCE_HARDWARE | {"pydantic"}) == set()


def test_agent_keygen_loads_no_broker_client() -> None:
    names = modules_after("import handoff.cli.agent")
    assert loaded(names, {"paho", "jeepney"}) == set()


def test_the_pure_core_loads_no_config_layer() -> None:
    names = modules_after("import handoff.core.machine, handoff.core.codec, handoff.core.inputs")
    assert loaded(names, {"msgspec", "tomllib"}) == set()
    assert not any(name in names for name in ("handoff.config", "handoff.agent.config"))


def test_the_appliance_and_the_agent_import_neither_each_other_nor_in_a_cycle() -> None:
    appliance = modules_after("import handoff.runtime.wiring")
    assert not any(name.startswith("handoff.agent") for name in appliance)
    agent = modules_after("import handoff.agent.service")
    assert not any(name.startswith(("handoff.runtime", "handoff.readers", "handoff.commands.parse")) for name in agent)


def test_the_mqtt_transport_does_not_load_the_command_parser() -> None:
    assert "handoff.commands.parse" not in modules_after("import handoff.mqtt.connection")


def test_no_two_parts_of_the_package_import_each_other() -> None:
    """Every import between the parts of `handoff` (handoff.X), function-local ones included,
    read from the source: the parts form layers, with no cycle between any of them."""
    graph = package_imports(REPO / "handoff")
    assert import_cycles(graph) == []


def test_every_policy_key_reaches_the_core_under_its_own_name() -> None:
    """The core takes plain values, not the config models: a key added to `[policy]` needs its
    field in `handoff.core.policy.Policy` too, or the core would never see it."""
    assert set(PolicyConfig.__struct_fields__) == {field.name for field in fields(Policy)}
    assert PolicyConfig(retap_guard_s=0).for_core() == Policy(300.0, 43200.0, 86400.0, 0.0, 3.0, False, 2)
    agent = AgentConfig(keys_file=Path("/k.pem"), confirm_s=5, require_confirmed=True)
    assert {field.name for field in fields(AgentPolicy)} <= set(AgentConfig.__struct_fields__)
    assert agent.for_core() == AgentPolicy(confirm_s=5, require_confirmed=True)
