"""Config validation: every refusal names the key and the file, in one line, exit status 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from handoff.config import load_config, resolve_config_path
from handoff.errors import ConfigError
from tests.conftest import Appliance, CliRunner

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


def test_cli_reports_config_error_in_one_line(appliance: Appliance, cli: CliRunner) -> None:
    appliance.write_config(appliance.config.read_text() + "\n[policy]\nidle_timeout_s = -3\n")
    result = cli("badges", "list", "-c", appliance.config)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "policy.idle_timeout_s" in result.stderr
    assert str(appliance.config) in result.stderr and "Traceback" not in result.stderr


def test_cli_bad_usage_exits_2(cli: CliRunner) -> None:
    result = cli("badges", "frobnicate")
    assert result.returncode == 2 and "Traceback" not in result.stderr
