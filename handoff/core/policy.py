"""The timers and rules the transition function obeys, as plain values.

The core is handed these rather than the validated config models so that it stays free of the
config layer (msgspec, TOML, file paths): the shell validates the file, then converts
(`PolicyConfig.for_core`, `AgentConfig.for_core`), and tests build them directly.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Policy:
    idle_timeout_s: float
    max_session_s: float
    custody_timeout_s: float
    retap_guard_s: float
    break_glass_hold_s: float
    """How long a badge rests on the reader before its tap breaks the glass."""
    break_glass_unknown: bool
    """Whether a badge the directory does not know may break the glass too."""
    break_glass_per_30d: int
    """Break-glass uses allowed per staff member in any 30 days."""


@dataclass(frozen=True)
class AgentPolicy:
    """With an agent on the attached device, every session end waits `confirm_s` for its receipt."""

    confirm_s: float
    require_confirmed: bool
