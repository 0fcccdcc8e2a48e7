"""Installs by role: a Pi installs `handoff[appliance]`, a workstation `handoff[agent]`, a server
`handoff[ledger]` (docs/install.md). A command whose extra is missing says which to install.

A host without an extra is simulated by an import hook that refuses the extra's modules
(tests/kit/imports.py): building one venv per extra would need the package index.
"""

from __future__ import annotations

import configparser
import re
from importlib.metadata import packages_distributions

import pytest

from handoff.extras import EXTRA_OF_MODULE
from tests.kit.cli import REPO
from tests.kit.config import Layout
from tests.kit.imports import modules_after, run_without

EXTRAS = ("appliance", "agent", "ledger")
EVERY_EXTRA_MODULE = sorted(EXTRA_OF_MODULE)


def setup_cfg() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    return parser


def distribution_names(requirements: str) -> list[str]:
    """The distribution of each requirement line, without version, marker or its own extras."""
    return [
        re.split(r"[\s<>=!~;\[]", line.strip(), maxsplit=1)[0].lower()
        for line in requirements.splitlines()
        if line.strip()
    ]


def extra_distributions() -> dict[str, list[str]]:
    extras = setup_cfg()["options.extras_require"]
    return {extra: distribution_names(extras[extra]) for extra in EXTRAS}


def test_every_module_of_an_extras_distributions_names_that_extra() -> None:
    modules_of: dict[str, set[str]] = {}
    for module, distributions in packages_distributions().items():
        for distribution in distributions:
            modules_of.setdefault(distribution.lower(), set()).add(module)
    expected = {
        module: extra
        for extra, distributions in extra_distributions().items()
        for distribution in distributions
        for module in modules_of[distribution]
    }
    assert expected == EXTRA_OF_MODULE


def test_the_base_install_holds_none_of_an_extras_distributions() -> None:
    base = set(distribution_names(setup_cfg()["options"]["install_requires"]))
    assert base == {"paho-mqtt", "cryptography", "msgspec", "rfc8785", "orjson"}
    for distributions in extra_distributions().values():
        assert base.isdisjoint(distributions)


def test_status_outbox_and_badges_run_on_the_base_install(appliance: Layout) -> None:
    for argv in (["status"], ["outbox", "list"], ["badges", "list"]):
        done = run_without(EVERY_EXTRA_MODULE, [*argv, "-c", str(appliance.config)])
        assert done.returncode == 0, (argv, done.stderr)


def test_what_docs_install_md_lists_for_the_base_imports_no_extras_module() -> None:
    code = (
        "import handoff.cli.audit, handoff.cli.outbox, handoff.cli.badges, handoff.cli.status, handoff.cli.sim\n"
        "import handoff.sim.nfc_badge, handoff.sim.piv_card, handoff.sim.vpcd, handoff.sim.fleet"
    )
    loaded = {name.partition(".")[0] for name in modules_after(code)}
    assert loaded.isdisjoint(EXTRA_OF_MODULE)


def test_the_agent_key_is_made_without_the_agent_extra(tmp_path) -> None:
    done = run_without(EVERY_EXTRA_MODULE, ["agent", "keygen", "--out", str(tmp_path / "agent.key")])
    assert done.returncode == 0, done.stderr
    assert "BEGIN PUBLIC KEY" in done.stdout


@pytest.mark.parametrize(
    ("blocked", "argv", "extra"),
    [
        (["jeepney"], ["agent", "-c", "/nonexistent/agent.toml"], "agent"),
        (["sqlalchemy"], ["ledger", "who", "WOW-1", "--at", "2027-01-15T08:00:00Z"], "ledger"),
        (["uvicorn"], ["ledger", "serve", "-c", "/nonexistent/ledger.toml"], "ledger"),
        (["serial"], ["provision", "--help"], "appliance"),
        (["evdev"], ["doctor", "-c", "/nonexistent/handoff.toml"], "appliance"),
    ],
)
def test_a_command_whose_extra_is_missing_names_it_in_one_line(blocked: list[str], argv: list[str], extra: str) -> None:
    done = run_without(blocked, argv)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert f"needs the '{extra}' extra" in done.stderr
    assert f"pip install 'handoff[{extra}]'" in done.stderr
    assert f"handoff {argv[0]}" in done.stderr


def test_run_names_the_appliance_extra_when_a_configured_readers_driver_is_missing(appliance: Layout) -> None:
    appliance.configure(port=1, readers=[{"kind": "nfc", "path": "udp:127.0.0.1:9"}])
    done = run_without(["nfc"], ["run", "-c", str(appliance.config)])
    assert done.returncode == 2
    assert done.stderr.strip().endswith("pip install 'handoff[appliance]'"), done.stderr
    assert "Traceback" not in done.stderr


def test_a_missing_module_no_extra_provides_is_a_broken_install_in_one_line(appliance: Layout) -> None:
    """What an install that lost a base dependency (or a tampered venv) sees: one line, no traceback."""
    done = run_without(["orjson"], ["status", "-c", str(appliance.config)])
    assert done.returncode == 1
    assert (
        done.stderr
        == "handoff: handoff status cannot run: this install of handoff lacks the module 'orjson'; reinstall it\n"
    )


def test_the_pi_installer_installs_the_appliance_and_make_setup_every_program() -> None:
    assert '"$prefix/venv/bin/pip" install -q "$repo[appliance]"' in (REPO / "firmware" / "install.sh").read_text()
    assert "-e '.[appliance,agent,ledger,test]'" in (REPO / "Makefile").read_text()
