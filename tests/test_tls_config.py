"""Certificate and key problems are one ConfigError naming the file, before any connection."""

from __future__ import annotations

from pathlib import Path

import pytest

from handoff.errors import ConfigError
from handoff.mqtt.connection import tls_context
from tests.kit.outbox import mqtt_config


def test_unusable_ca_file_names_the_key_and_file(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"mqtt\.ca_file .*ca\.pem: not a usable CA certificate"):
        tls_context(mqtt_config(8883, url="mqtts://127.0.0.1:8883", ca_file=ca))


def test_missing_client_key_names_the_key_and_file(tmp_path: Path) -> None:
    cert = tmp_path / "client.pem"
    cert.write_text("x")
    with pytest.raises(ConfigError, match=r"mqtt\.key_file: .*missing\.key does not exist"):
        tls_context(mqtt_config(8883, url="mqtts://127.0.0.1:8883", cert_file=cert, key_file=tmp_path / "missing.key"))
