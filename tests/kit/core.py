"""A device driven through the pure core one input at a time, with a clock the test moves.

The policy and the agent are the test's (the kit's POLICY by default); ids are counted.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from handoff.core.events import Event
from handoff.core.inputs import BreakGlass, Input, Lift, Tap
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


def tap(
    staff: str | None,
    *,
    reader: str = "nfc:usb",
    revoked: bool = False,
    ref: str | None = None,
    role: str | None = None,
) -> Tap:
    """A tap by the badge of `staff` (None: a badge the directory does not know)."""
    return Tap(reader=reader, badge_ref=ref or f"ref-{staff}", staff_id=staff, revoked=revoked, role=role)


def badge(staff: str | None, *, ref: str | None = None, revoked: bool = False, role: str | None = "RN") -> Tap:
    """A tap by a badge whose directory row has a role (RN unless said), as role changes need."""
    return tap(staff, ref=ref, revoked=revoked, role=role if staff else None)


def held(badge: Tap) -> BreakGlass:
    """The same badge, still on the reader when the hold time is up."""
    assert badge.badge_ref is not None
    return BreakGlass(badge.reader, badge.badge_ref, badge.staff_id, revoked=badge.revoked, role=badge.role)


def kinds(events: tuple[Event, ...]) -> list[tuple[str, str | None, str | None]]:
    return [(e.type, e.staff_id, e.reason) for e in events]


@dataclass
class Cart:
    policy: Policy = POLICY
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

    def present(self, badge: Tap, *, after: float = 0.0) -> Outcome:
        """`badge` tapped `after` seconds on, then lifted."""
        outcome = self.feed(badge, after=after)
        assert badge.badge_ref is not None
        self.feed(Lift(badge.reader, badge.badge_ref))
        return outcome

    def tap_and_lift(self, staff: str | None, *, after: float = 0.0, **kwargs: object) -> Outcome:
        return self.present(tap(staff, **kwargs), after=after)  # type: ignore[arg-type]

    def hold(self, badge: Tap, *, after: float = 0.0, hold_s: float | None = None) -> tuple[Outcome, Outcome]:
        """The tap, then the break-glass ask `hold_s` later (the policy's hold time), then the lift."""
        first = self.feed(badge, after=after)
        second = self.feed(held(badge), after=self.policy.break_glass_hold_s if hold_s is None else hold_s)
        assert badge.badge_ref is not None
        self.feed(Lift(badge.reader, badge.badge_ref))
        return first, second
