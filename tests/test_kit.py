"""The test kit itself: the config it writes is what the appliance loads, and it leaves no globals set."""

from __future__ import annotations

from pathlib import Path

import pytest
from gpiozero import Device

from handoff.config import load_config
from tests.kit.config import DEVICE, SITE, Layout
from tests.kit.gpio import mock_pins


def test_config_text_loads_with_each_table_as_given(tmp_path: Path) -> None:
    layout = Layout.create(tmp_path)
    layout.configure(
        port=18830,
        appliance={"allow_unsigned_commands": True},
        policy={"idle_timeout_s": 7, "retap_guard_s": 0},
        mqtt={"protocol": "3.1.1"},
        readers=[{"kind": "nfc", "path": "udp:127.0.0.1:5"}, {"kind": "pcsc", "name": "Virtual PCD"}],
    )
    config = load_config(layout.config)
    assert (config.appliance.site, config.appliance.device_id, config.appliance.data_dir) == (
        SITE,
        DEVICE,
        layout.data_dir,
    )
    assert config.appliance.allow_unsigned_commands and config.appliance.badge_secret_file == layout.secret
    assert (config.policy.idle_timeout_s, config.policy.retap_guard_s) == (7, 0)
    assert (config.mqtt.port, config.mqtt.tls, config.mqtt.protocol) == (18830, False, "3.1.1")
    assert [r.kind for r in config.readers] == ["nfc", "pcsc"]
    assert layout.secret.stat().st_mode & 0o777 == 0o600


def test_mock_pins_put_the_previous_factory_back_even_after_a_failure() -> None:
    before = Device.pin_factory
    with pytest.raises(RuntimeError), mock_pins() as factory:
        assert Device.pin_factory is factory
        raise RuntimeError("a failing test")
    assert Device.pin_factory is before
