"""The agent's logoff actions (docs/agent.md), run in order for one session-ending event.

A `command` is an argv with placeholders, run without a shell so that a staff id can never
become shell syntax; `logind` ends the seat's graphical sessions. Each returns its outcome
rather than raising: a failed action makes a `failed` receipt, not a dead agent.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

from handoff.agent.config import ActionConfig, CommandAction, LogindAction
from handoff.agent.logind import Logind, LogindError
from handoff.agent.receipt import ActionOutcome


def run_actions(actions: Sequence[ActionConfig], event: Mapping[str, Any], logind: Logind) -> list[ActionOutcome]:
    outcomes = []
    for action in actions:
        if isinstance(action, CommandAction):
            outcomes.append(run_command(action, event))
        else:
            outcomes.append(_run_logind(action, logind))
    return outcomes


def run_command(action: CommandAction, event: Mapping[str, Any]) -> ActionOutcome:
    data = event.get("data", {})
    values = {
        "staff_id": str(data.get("staff_id") or ""),
        "session_id": str(data.get("session_id") or ""),
        "reason": str(data.get("reason") or ""),
        "event_id": str(event.get("id") or ""),
    }
    argv = [_substituted(part, values) for part in action.argv]
    try:
        finished = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=action.timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        return ActionOutcome("command", False, f"no exit within {action.timeout_s:g} s (killed)")
    except OSError as exc:
        return ActionOutcome("command", False, f"cannot run {argv[0]}: {exc.strerror or exc}")
    if finished.returncode != 0:
        return ActionOutcome("command", False, f"exit status {finished.returncode}")
    return ActionOutcome("command", True)


def _substituted(part: str, values: Mapping[str, str]) -> str:
    """Each placeholder replaced by its value; nothing else in the argument is interpreted."""
    for name, value in values.items():
        part = part.replace("{" + name + "}", value)
    return part


def _run_logind(action: LogindAction, logind: Logind) -> ActionOutcome:
    try:
        done, detail = logind.end_sessions(action.mode)
    except LogindError as exc:
        return ActionOutcome("logind", False, str(exc))
    return ActionOutcome("logind", done, detail)
