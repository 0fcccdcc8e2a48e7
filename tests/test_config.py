"""Config validation: every refusal names the key and the file, in one line, exit status 2."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from handoff.config import (
    AgentConfig,
    KeyboardReaderConfig,
    OsdpReaderConfig,
    PcscReaderConfig,
    load_config,
    resolve_config_path,
)
from handoff.errors import ConfigError
from tests.kit.cli import CliRunner
from tests.kit.config import Layout

GOOD = """
[appliance]
site = "st-elsewhere"
device_id = "WOW-3N-07"
reader_id = "rdr-0042"
data_dir = "/tmp/x"
badge_secret_file = "/tmp/badge.key"

[policy]
idle_timeout_s = 1.5
max_session_s = 43200
custody_timeout_s = 86400
retap_guard_s = 0

[mqtt]
url = "mqtts://broker.hospital.example:8883"
ca_file = "/etc/handoff/ca.pem"
cert_file = "/etc/handoff/reader.pem"
key_file = "/etc/handoff/reader.key"
topic_prefix = "handoff/v1"

[[readers]]
kind = "nfc"
path = "udp:127.0.0.1:54321"

[[readers]]
kind = "pcsc"
name = ""

[feedback]
board = "none"
"""


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "handoff.toml"
    path.write_text(body, encoding="utf-8")
    return path


def test_full_example_parses(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert config.appliance.site == "st-elsewhere" and config.appliance.command_key_file is None
    assert config.policy.idle_timeout_s == 1.5 and config.policy.retap_guard_s == 0
    assert (config.mqtt.host, config.mqtt.port, config.mqtt.tls) == ("broker.hospital.example", 8883, True)
    assert config.mqtt.client_id == "rdr-0042"
    assert [r.kind for r in config.readers] == ["nfc", "pcsc"]
    assert config.readers[0].path == "udp:127.0.0.1:54321"


def test_minimal_config_gets_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[appliance]\nsite = "s"\ndevice_id = "d"\n'))
    assert config.policy.idle_timeout_s == 300 and config.policy.retap_guard_s == 2.0
    assert config.appliance.reader_id.startswith("rdr-")
    assert config.mqtt.topic_prefix == "handoff/v1" and config.readers == ()
    assert str(config.appliance.data_dir) == "/var/lib/handoff"


@pytest.mark.parametrize(
    ("old", "new", "culprit"),
    [
        ('site = "st-elsewhere"\n', "", "appliance.site is required"),
        ('device_id = "WOW-3N-07"\n', 'device_id = "WOW/07"\n', "appliance.device_id"),
        ("idle_timeout_s = 1.5", "idle_timeout_s = -1", "policy.idle_timeout_s must be greater than zero"),
        ("idle_timeout_s = 1.5", "idle_timeout_s = 0", "policy.idle_timeout_s"),
        ("idle_timeout_s = 1.5", 'idle_timeout_s = "5"', "policy.idle_timeout_s must be a number"),
        ("retap_guard_s = 0", "retap_guard_s = -0.5", "policy.retap_guard_s must be zero or more"),
        ("max_session_s = 43200", "max_session_s = true", "policy.max_session_s"),
        ("custody_timeout_s = 86400", "custody_timeout_s = nan", "policy.custody_timeout_s"),
        ("[feedback]", "[feedbak]", "feedbak is not a known key"),
        ('board = "none"', 'board = "none"\ncolour = "red"', "feedback.colour is not a known key"),
        ('url = "mqtts://broker.hospital.example:8883"', 'url = "mqtt://broker:1883"', "mqtt.url is unencrypted"),
        ('url = "mqtts://broker.hospital.example:8883"', 'url = "http://broker"', "mqtt.url must look like"),
        ('url = "mqtts://broker.hospital.example:8883"', 'url = "mqtts://broker:99999"', "mqtt.url has a bad port"),
        ('key_file = "/etc/handoff/reader.key"\n', "", "mqtt.key_file must be set with its pair"),
        ('topic_prefix = "handoff/v1"', 'topic_prefix = "handoff/#"', "mqtt.topic_prefix"),
        ('topic_prefix = "handoff/v1"', "topic_prefix = 7", "mqtt.topic_prefix must be a string"),
        ('kind = "nfc"', 'kind = "rfid"', "readers[0].kind must be one of nfc, pcsc"),
        ('kind = "pcsc"\nname = ""', 'kind = "pcsc"\nname = ""\nauth = "piv-cak"', "readers[1].trust_anchors"),
        ('path = "udp:127.0.0.1:54321"', 'path = "usb"\nname = "x"', "readers[0].name is not a known key"),
        ("[appliance]", "[appliance]\nsecret = 1", "appliance.secret is not a known key"),
    ],
)
def test_bad_values_are_refused_naming_the_key(tmp_path: Path, old: str, new: str, culprit: str) -> None:
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert culprit in message and str(path) in message and "\n" not in message


def test_insecure_url_allowed_when_asked(tmp_path: Path) -> None:
    body = GOOD.replace('url = "mqtts://broker.hospital.example:8883"', 'url = "mqtt://b"\nallow_insecure = true')
    config = load_config(write(tmp_path, body))
    assert (config.mqtt.tls, config.mqtt.port) == (False, 1883)


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[appliance\n"))


def test_config_path_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HANDOFF_CONFIG", raising=False)
    assert str(resolve_config_path(None)) == "/etc/handoff/handoff.toml"
    monkeypatch.setenv("HANDOFF_CONFIG", "/srv/h.toml")
    assert str(resolve_config_path(None)) == "/srv/h.toml"
    assert str(resolve_config_path("/x.toml")) == "/x.toml"


def test_cli_reports_config_error_in_one_line(appliance: Layout, cli: CliRunner) -> None:
    appliance.configure(policy={"idle_timeout_s": -3})
    result = cli("badges", "list", "-c", appliance.config)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "policy.idle_timeout_s" in result.stderr
    assert str(appliance.config) in result.stderr and "Traceback" not in result.stderr


def test_cli_bad_usage_exits_2(cli: CliRunner) -> None:
    result = cli("badges", "frobnicate")
    assert result.returncode == 2 and "Traceback" not in result.stderr


FULL_EXAMPLE = """
[appliance]
site = "st-elsewhere"
device_id = "WOW-3N-07"
reader_id = "rdr-0042"
data_dir = "/var/lib/handoff"
badge_secret_file = "/etc/handoff/badge.key"
command_key_file = "/etc/handoff/commands.pem"
allow_unsigned_commands = false

[policy]
idle_timeout_s = 300
max_session_s = 43200
custody_timeout_s = 86400
retap_guard_s = 2.0

[mqtt]
url = "mqtts://broker.hospital.example:8883"
allow_insecure = false
protocol = "5"
client_id = ""
username = ""
password_file = ""
ca_file = ""
cert_file = ""
key_file = ""
topic_prefix = "handoff/v1"

[[readers]]
kind = "nfc"
path = "usb"

[[readers]]
kind = "pcsc"
name = ""
lock_on_card_removal = false

[[readers]]
kind = "keyboard"
match = "RFIDeas"

[[readers]]
kind = "osdp"
port = "/dev/ttyUSB0"
address = 0
baud = 9600
scbk_file = "/etc/handoff/osdp.scbk"

[agent]
keys_file = "/etc/handoff/agents.pem"
confirm_s = 10
require_confirmed = false

[audit]
key_file = "/etc/handoff/audit.key"
checkpoint_every = 100
checkpoint_s = 300

[feedback]
board = "pi-cart-v1"
"""


def test_spec_section_6_example_parses_whole(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL_EXAMPLE))
    assert config.appliance.allow_unsigned_commands is False
    assert [r.kind for r in config.readers] == ["nfc", "pcsc", "keyboard", "osdp"]
    pcsc, keyboard, osdp = config.readers[1:]
    assert isinstance(pcsc, PcscReaderConfig) and pcsc.lock_on_card_removal is False
    assert isinstance(keyboard, KeyboardReaderConfig) and keyboard.match == "RFIDeas"
    assert isinstance(osdp, OsdpReaderConfig)
    assert (osdp.port, osdp.address, osdp.baud, osdp.scbk_file) == ("/dev/ttyUSB0", 0, 9600, Path(SCBK))
    assert config.agent is not None and config.audit is not None
    assert (config.agent.keys_file, config.agent.confirm_s, config.agent.require_confirmed) == (
        Path("/etc/handoff/agents.pem"),
        10.0,
        False,
    )
    assert (config.audit.key_file, config.audit.checkpoint_every, config.audit.checkpoint_s) == (
        Path("/etc/handoff/audit.key"),
        100,
        300.0,
    )
    assert config.mqtt.client_id == "rdr-0042" and config.mqtt.ca_file is None


SCBK = "/etc/handoff/osdp.scbk"


def test_optional_tables_default_to_absent(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert config.agent is None and config.audit is None and config.appliance.allow_unsigned_commands is False
    assert load_config(write(tmp_path, GOOD + '\n[agent]\nkeys_file = "/k.pem"\n')).agent == AgentConfig(
        keys_file=Path("/k.pem"), confirm_s=10.0, require_confirmed=False
    )
    audit = load_config(write(tmp_path, GOOD + '\n[audit]\nkey_file = "/a.key"\n')).audit
    assert audit is not None and (audit.checkpoint_every, audit.checkpoint_s) == (100, 300.0)


@pytest.mark.parametrize(
    ("old", "new", "culprit"),
    [
        ("allow_unsigned_commands = false", 'allow_unsigned_commands = "no"', "appliance.allow_unsigned_commands"),
        ("lock_on_card_removal = false", "lock_on_card_removal = 1", "readers[1].lock_on_card_removal must be true"),
        ('match = "RFIDeas"', 'match = ""', "readers[2].match must not be empty"),
        ('match = "RFIDeas"', 'name = "RFIDeas"', "readers[2].match is required"),
        ('match = "RFIDeas"', 'match = "x"\npath = "usb"', "readers[2].path is not a known key"),
        ('port = "/dev/ttyUSB0"', "", "readers[3].port is required"),
        ("address = 0", "address = 127", "readers[3].address must be at most 126"),
        ("address = 0", "address = -1", "readers[3].address must be zero or more"),
        ("address = 0", "address = 1.5", "readers[3].address must be a whole number"),
        ("baud = 9600", "baud = 9601", "readers[3].baud must be one of 9600, 19200"),
        (f'scbk_file = "{SCBK}"', "", "readers[3].scbk_file is required"),
        (f'scbk_file = "{SCBK}"', 'scbk_file = ""', "readers[3].scbk_file must not be empty"),
        ('kind = "osdp"', 'kind = "wiegand"', "readers[3].kind must be one of nfc, pcsc, keyboard, osdp"),
        ('kind = "osdp"', "", "readers[3].kind is required"),
        ('keys_file = "/etc/handoff/agents.pem"\n', "", "agent.keys_file is required"),
        ("confirm_s = 10", "confirm_s = 0", "agent.confirm_s must be greater than zero"),
        ("confirm_s = 10", "confirm_s = 7200", "agent.confirm_s must be at most 3600 (1 hour)"),
        ("require_confirmed = false", "require_confirmed = 0", "agent.require_confirmed must be true or false"),
        ("[agent]", "[agent]\nkey_file = 'x'", "agent.key_file is not a known key"),
        ('key_file = "/etc/handoff/audit.key"\n', "", "audit.key_file is required"),
        ("checkpoint_every = 100", "checkpoint_every = 0", "audit.checkpoint_every must be greater than zero"),
        ("checkpoint_every = 100", "checkpoint_every = 2.5", "audit.checkpoint_every must be a whole number"),
        ("checkpoint_s = 300", "checkpoint_s = inf", "audit.checkpoint_s must be a number of seconds"),
        ("checkpoint_s = 300", "checkpoint_s = 90000", "audit.checkpoint_s must be at most 86400 (1 day)"),
        ("[audit]", "[audit]\nevery = 3", "audit.every is not a known key (known here: key_file, checkpoint_every"),
        ("[agent]", "[agents]", "agents is not a known key"),
        ('protocol = "5"', 'protocol = "4"', "mqtt.protocol must be one of '5', '3.1.1'"),
    ],
)
def test_new_keys_are_refused_naming_the_key(tmp_path: Path, old: str, new: str, culprit: str) -> None:
    assert old in FULL_EXAMPLE
    path = write(tmp_path, FULL_EXAMPLE.replace(old, new, 1))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert culprit in message and str(path) in message and "\n" not in message
    assert caught.value.key is not None and message.startswith(f"config {path}: {caught.value.key} ")


def test_an_empty_optional_path_is_not_set_and_a_dot_is_a_path(tmp_path: Path) -> None:
    """TOML has no null: "" stands for "not set", which "." (this directory) must not be taken for."""
    blank = load_config(
        write(tmp_path, GOOD.replace('data_dir = "/tmp/x"', 'data_dir = "/tmp/x"\ncommand_key_file = ""'))
    )
    dot = load_config(write(tmp_path, GOOD.replace('data_dir = "/tmp/x"', 'data_dir = "."')))
    assert blank.appliance.command_key_file is None and dot.appliance.data_dir == Path(".")


@pytest.mark.parametrize(
    ("key", "value", "bound"),
    [
        ("idle_timeout_s", "1e308", "at most 86400 (1 day), got 1e+308"),
        ("max_session_s", "604801", "at most 604800 (7 days)"),
        ("custody_timeout_s", "1e12", "at most 2.592e+06 (30 days)"),
        ("retap_guard_s", "61", "at most 60 (1 minute)"),
    ],
)
def test_every_timer_has_an_upper_bound_named_in_the_error(tmp_path: Path, key: str, value: str, bound: str) -> None:
    body = FULL_EXAMPLE.replace(f"\n{key} =", f"\n{key} = {value}\n# was", 1)
    path = write(tmp_path, body)
    with pytest.raises(ConfigError, match=rf"policy\.{key} must be {re.escape(bound)}"):
        load_config(path)


def test_retention_has_an_upper_bound(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"outbox\.retention_days must be at most 3650 \(10 years\)"):
        load_config(write(tmp_path, GOOD + "\n[outbox]\nretention_days = 1e9\n"))


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("mqtt://[::1", "is not a broker URL"),
        ("mqtts://127.0.0.1:0", "has port 0"),
        ("mqtts://user:secret@broker:8883", "must not carry credentials"),
        ("mqtts://user@broker:8883", "must not carry credentials"),
        ("mqtts://broker:8883/handoff", "no path, query or fragment"),
        ("mqtts://broker:8883?x=1", "no path, query or fragment"),
        ("mqtts://broker:8883#frag", "no path, query or fragment"),
        ("mqtts://bro ker:8883", "spaces or control characters"),
        ("mqtts://bro\tker:8883", "spaces or control characters"),
    ],
)
def test_broker_urls_are_refused_naming_mqtt_url(tmp_path: Path, url: str, problem: str) -> None:
    path = write(tmp_path, GOOD.replace("mqtts://broker.hospital.example:8883", url))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.key == "mqtt.url" and problem in str(caught.value) and "\n" not in str(caught.value)
    assert "secret" not in str(caught.value)


def test_ipv6_broker_url_is_accepted(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD.replace("broker.hospital.example:8883", "[::1]:8883")))
    assert (config.mqtt.host, config.mqtt.port) == ("::1", 8883)
