"""A device driven through the pure core one input at a time, with a clock the test moves."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from handoff.core.events import Event
from handoff.core.inputs import Input, Lift, Tap
from handoff.core.machine import Outcome, step
from handoff.core.policy import AgentPolicy, Policy
from handoff.core.state import State, initial_state

POLICY = Policy(
    idle_timeout_s=300,
    max_session_s=3600,
    custody_timeout_s=7200,
    retap_guard_s=2.0,
    break_glass_hold_s=3.0,
    break_glass_unknown=False,
    break_glass_per_30d=2,
)


def tap(staff: str | None, *, reader: str = "nfc:usb", revoked: bool = False, ref: str | None = None) -> Tap:
    return Tap(reader=reader, badge_ref=ref or f"ref-{staff}", staff_id=staff, revoked=revoked)


@dataclass
class Cart:
    """A device driven through the core one input at a time, with a clock the test moves."""

    now: float = 1_000.0
    state: State = field(default_factory=lambda: initial_state(1_000.0))
    ids: itertools.count[int] = field(default_factory=itertools.count)
    agent: AgentPolicy | None = None

    def new_id(self) -> str:
        return f"id-{next(self.ids)}"

    def feed(self, event_input: Input, *, after: float = 0.0) -> Outcome:
        self.now += after
        outcome = step(self.state, event_input, self.now, POLICY, self.new_id, self.agent)
        self.state = outcome.state
        return outcome

    def tap_and_lift(self, staff: str | None, *, after: float = 0.0, **kwargs: object) -> Outcome:
        badge = tap(staff, **kwargs)  # type: ignore[arg-type]
        outcome = self.feed(badge, after=after)
        if badge.badge_ref:
            self.feed(Lift(badge.reader, badge.badge_ref))
        return outcome


def kinds(events: tuple[Event, ...]) -> list[tuple[str, str | None, str | None]]:
    return [(e.type, e.staff_id, e.reason) for e in events]
