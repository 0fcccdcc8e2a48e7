"""Pin maps: which BCM pin drives which LED and the buzzer on a given cart build.

They live as TOML under `hw/` so a new cart build is a new file, not a code change.
"""

from __future__ import annotations

import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from handoff.errors import ConfigError

OUTPUTS: Final = ("green", "red", "amber", "buzzer")
PI_MODEL: Final = Path("/proc/device-tree/model")
CART_BOARD: Final = "pi-cart-v1"
BUTTON: Final = "break_glass_button"
"""The one input a pin map may name: a push button between the pin and ground (pulled up)."""
BCM_PINS: Final = range(2, 28)


@dataclass(frozen=True)
class Board:
    name: str
    pins: dict[str, int]
    active_high: bool
    source: Path
    button: int | None = None
    """The break-glass button's pin, when this build has one."""


def is_raspberry_pi(model: Path = PI_MODEL) -> bool:
    try:
        return "Raspberry Pi" in model.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def default_board(model: Path = PI_MODEL) -> str:
    """The cart's pin map on a Pi; "none" elsewhere, since `handoff run` refuses a pin map it cannot drive."""
    return CART_BOARD if is_raspberry_pi(model) else "none"


def board_dirs() -> list[Path]:
    """The source tree's hw/ (a development checkout), then where the package installs them."""
    return [Path(__file__).resolve().parents[2] / "hw", Path(sys.prefix) / "share" / "handoff" / "hw"]


def load_board(name: str) -> Board:
    for directory in board_dirs():
        path = directory / f"{name}.toml"
        if path.is_file():
            return parse_board(path)
    searched = ", ".join(str(d) for d in board_dirs())
    raise ConfigError(f"feedback.board: no pin map named {name!r} (looked for {name}.toml in {searched})")


def parse_board(path: Path) -> Board:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"pin map {path}: cannot be read: {exc}") from None
    unknown = set(raw) - {"description", "active_high", "pins"}
    if unknown:
        raise ConfigError(f"pin map {path}: {sorted(unknown)[0]} is not a known key")
    pins_raw: Any = raw.get("pins")
    if not isinstance(pins_raw, dict):
        raise ConfigError(f"pin map {path}: [pins] is required")
    pins: dict[str, int] = {}
    for output in OUTPUTS:
        value = pins_raw.get(output)
        if isinstance(value, bool) or not isinstance(value, int) or value not in BCM_PINS:
            raise ConfigError(f"pin map {path}: pins.{output} must be a BCM pin number 2-27, got {value!r}")
        pins[output] = value
    extra = set(pins_raw) - {*OUTPUTS, BUTTON}
    if extra:
        raise ConfigError(f"pin map {path}: pins.{sorted(extra)[0]} is not a known output")
    button = pins_raw.get(BUTTON)
    if button is not None and (isinstance(button, bool) or not isinstance(button, int) or button not in BCM_PINS):
        raise ConfigError(f"pin map {path}: pins.{BUTTON} must be a BCM pin number 2-27, got {button!r}")
    used = [*pins.values(), *([button] if button is not None else [])]
    if len(set(used)) != len(used):
        raise ConfigError(f"pin map {path}: two outputs share one pin")
    active_high = raw.get("active_high", True)
    if not isinstance(active_high, bool):
        raise ConfigError(f"pin map {path}: active_high must be true or false")
    return Board(path.stem, pins, active_high, path, button)
