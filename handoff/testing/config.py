"""Appliance configs for tests, bench and demo, written in this one place.

The text comes from the provisioning renderer the product itself uses, so a test config is
shaped like one `handoff provision` writes; callers say only what differs from a local cart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from handoff.provision.render import Table, render_toml

SITE, DEVICE, READER = "st-elsewhere", "WOW-3N-07", "rdr-0042"
PREFIX = f"handoff/v1/{SITE}/{DEVICE}"
SECRET = "0123456789abcdef0123456789abcdef\n"  # noqa: S105 - the throwaway site secret of test and demo carts


def config_text(
    data_dir: Path,
    secret: Path,
    *,
    port: int = 1883,
    appliance: Table | None = None,
    policy: Table | None = None,
    mqtt: Table | None = None,
    readers: Sequence[Table] = (),
    feedback: Table | None = None,
    audit: Table | None = None,
    agent: Table | None = None,
) -> str:
    """A valid config against a plain broker on 127.0.0.1:`port`; each table's keys override the defaults."""
    mqtt_table: dict[str, str | bool | int | float] = {"url": f"mqtt://127.0.0.1:{port}", "allow_insecure": True}
    mqtt_table.update(mqtt or {})
    if str(mqtt_table["url"]).startswith("mqtts://"):
        del mqtt_table["allow_insecure"]
    tables: Mapping[str, Table] = {
        "appliance": {
            "site": SITE,
            "device_id": DEVICE,
            "reader_id": READER,
            "data_dir": str(data_dir),
            "badge_secret_file": str(secret),
            **(appliance or {}),
        },
        "policy": policy or {},
        "mqtt": mqtt_table,
        "feedback": feedback or {"board": "none"},
        **({"audit": audit} if audit else {}),
        **({"agent": agent} if agent else {}),
    }
    return render_toml(tables, {"readers": readers})


@dataclass
class Layout:
    """A config file, site secret and data dir laid out like /etc/handoff on a real cart."""

    root: Path
    config: Path
    secret: Path
    data_dir: Path

    @classmethod
    def create(cls, root: Path) -> Layout:
        """A 0600 site secret and the default config in `root`."""
        root.mkdir(parents=True, exist_ok=True)
        layout = cls(root, root / "handoff.toml", root / "badge.key", root / "data")
        layout.secret.write_text(SECRET)
        layout.secret.chmod(0o600)
        layout.configure()
        return layout

    def configure(
        self,
        *,
        port: int = 1883,
        appliance: Table | None = None,
        policy: Table | None = None,
        mqtt: Table | None = None,
        readers: Sequence[Table] = (),
        feedback: Table | None = None,
        audit: Table | None = None,
        agent: Table | None = None,
    ) -> Path:
        """Rewrite the config: `config_text` with this layout's data dir and secret."""
        text = config_text(
            self.data_dir,
            self.secret,
            port=port,
            appliance=appliance,
            policy=policy,
            mqtt=mqtt,
            readers=readers,
            feedback=feedback,
            audit=audit,
            agent=agent,
        )
        return self.write_config(text)

    def write_config(self, body: str) -> Path:
        """Raw text, for the tests that feed the appliance a config it must refuse."""
        self.config.write_text(body, encoding="utf-8")
        return self.config
