"""A device driven through the pure core one input at a time, with a clock the test moves.

For the tables of the core's rows: the policy and the agent are the test's, ids are counted.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from handoff.core.events import Event
from handoff.core.inputs import BreakGlass, Input, Lift, Tap
from handoff.core.machine import Outcome, step
from handoff.core.policy import AgentPolicy, Policy
from handoff.core.state import State, initial_state


def badge(staff: str | None, *, ref: str | None = None, revoked: bool = False, role: str | None = "RN") -> Tap:
    """A tap on `nfc:usb` by the badge of `staff` (None: a badge the directory does not know)."""
    return Tap("nfc:usb", ref or f"ref-{staff}", staff, revoked=revoked, role=role if staff else None)


def held(tap: Tap) -> BreakGlass:
    """The same badge, still on the reader when the hold time is up."""
    assert tap.badge_ref is not None
    return BreakGlass(tap.reader, tap.badge_ref, tap.staff_id, revoked=tap.revoked, role=tap.role)


def kinds(events: tuple[Event, ...]) -> list[tuple[str, str | None, str | None]]:
    return [(e.type, e.staff_id, e.reason) for e in events]


@dataclass
class CoreCart:
    policy: Policy
    agent: AgentPolicy | None = None
    now: float = 1_000.0
    state: State = field(default_factory=lambda: initial_state(1_000.0))
    ids: itertools.count[int] = field(default_factory=itertools.count)

    def new_id(self) -> str:
        return f"id-{next(self.ids)}"

    def feed(self, event_input: Input, *, after: float = 0.0) -> Outcome:
        self.now += after
        outcome = step(self.state, event_input, self.now, self.policy, self.new_id, self.agent)
        self.state = outcome.state
        return outcome

    def tap_and_lift(self, tap: Tap, *, after: float = 0.0) -> Outcome:
        outcome = self.feed(tap, after=after)
        assert tap.badge_ref is not None
        self.feed(Lift(tap.reader, tap.badge_ref))
        return outcome

    def hold(self, tap: Tap, *, after: float = 0.0, hold_s: float | None = None) -> tuple[Outcome, Outcome]:
        """The tap, then the break-glass ask `hold_s` later (the policy's hold time), then the lift."""
        first = self.feed(tap, after=after)
        second = self.feed(held(tap), after=self.policy.break_glass_hold_s if hold_s is None else hold_s)
        assert tap.badge_ref is not None
        self.feed(Lift(tap.reader, tap.badge_ref))
        return first, second
