"""The loop that owns the custody/session state: inputs in through one queue, nothing shared.

Readers, the MQTT client and signal handlers only ever `submit()`; this thread alone steps
the core, commits to the store, signals the clinician and wakes the publisher, in that order:
nothing says "accepted" before the commit.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, Protocol, TypeAlias

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from handoff.badge_ref import BadgeSecret
from handoff.cloudevents import EventContext
from handoff.commands.handler import Order
from handoff.commands.seen import SeenCommand
from handoff.config import Config
from handoff.core.events import Event
from handoff.core.inputs import BreakGlass, HolderRole, Input, Lift, Restart, Revoked, Tap, Tick, WarnIdle
from handoff.core.machine import Outcome, idle_warning_due, next_deadline, step
from handoff.core.state import State, initial_state, shifted
from handoff.directory import Directory
from handoff.errors import HandoffError
from handoff.feedback.cues import Cue
from handoff.feedback.output import Feedback
from handoff.outbox import StoredEvent, StoreError
from handoff.readers.base import BadgePresented, BadgeRemoved, BadRead, ReaderEvent
from handoff.receipt import check_receipt
from handoff.runtime.clock import Clock
from handoff.runtime.cues import cue_for, describe
from handoff.runtime.gestures import BreakGlassButton, Gestures

log = logging.getLogger("handoff")

DIRECTORY_POLL_S: Final = 1.0
RESTART_RETRY_S: Final = 1.0


class StoreUnavailable(HandoffError):
    """The state cannot be read at start: exit non-zero so systemd restarts the appliance."""

    exit_code = 1


@dataclass(frozen=True)
class Stop:
    """Asks the loop to finish what it holds and return; `why` is logged by the loop."""

    why: str = "asked to stop"


@dataclass(frozen=True)
class Command:
    name: str
    payload: bytes


@dataclass(frozen=True)
class ReceiptMessage:
    """A message on the device's `receipts` topic, not yet checked."""

    payload: bytes


InboxItem: TypeAlias = ReaderEvent | Input | Command | ReceiptMessage | BreakGlassButton | Stop


class Store(Protocol):
    def load_state(self) -> State | None: ...
    def commit(
        self, state: State, events: tuple[Event, ...], context: EventContext, command: SeenCommand | None = None
    ) -> list[StoredEvent]: ...
    def sign(self, stored: list[StoredEvent]) -> None: ...
    def checkpoint(self, context: EventContext, *, force: bool = False) -> bool: ...


class Publisher(Protocol):
    def wake(self) -> None: ...
    @property
    def connected(self) -> bool: ...
    @property
    def blocked(self) -> object | None: ...
    @property
    def fault(self) -> str | None: ...


class Commands(Protocol):
    def handle(self, name: str, payload: bytes, now: float) -> Order | None: ...
    def settle(self, order: Order, now: float, *, ignored: str | None = None, failure: str | None = None) -> None: ...


class Appliance:
    def __init__(
        self,
        config: Config,
        *,
        conn: sqlite3.Connection,
        store: Store,
        secret: BadgeSecret,
        feedback: Feedback,
        publisher: Publisher,
        clock: Clock,
        new_id: Callable[[], str],
        clock_synced: Callable[[], bool],
        commands: Commands,
        heartbeat: Callable[[], None],
        agent_keys: Sequence[Ed25519PublicKey] = (),
    ) -> None:
        self._config = config
        self._policy = config.policy.for_core()
        self._agent = config.agent.for_core() if config.agent is not None else None
        self._conn = conn
        self._store = store
        self._directory = Directory(conn)
        self._secret = secret
        self._feedback = feedback
        self._publisher = publisher
        self._clock = clock
        self._new_id = new_id
        self._clock_synced = clock_synced
        self._commands = commands
        self._heartbeat = heartbeat
        self._agent_keys = agent_keys
        self._receipts: Counter[str] = Counter()
        """Receipts by what became of them, for the retained status (docs/agent.md)."""
        self._inbox: queue.SimpleQueue[InboxItem] = queue.SimpleQueue()
        """SimpleQueue: its put() is reentrant, so a signal handler may submit a Stop."""
        self._state = initial_state(clock.time())
        self._data_version = -1
        self._next_directory_check = 0.0
        self._gestures = Gestures(self._policy.break_glass_hold_s)
        self._online = False
        self._outbox_blocked = False
        self._restart_pending = True
        """Until the Restart is recorded, the state on disk still shows a session that did not
        survive: judging a tap against it would log the holder off for the wrong reason."""
        self._restart_refused = False
        self._deferred: deque[ReaderEvent | Input | Command | ReceiptMessage | BreakGlassButton] = deque()
        self._store_fault: str | None = None
        """What arrived while the Restart could not be recorded, replayed once it is."""

    @property
    def state(self) -> State:
        return self._state

    def submit(self, item: InboxItem) -> None:
        """Thread-safe and signal-safe: the only way anything outside this loop reaches the state."""
        self._inbox.put(item)

    def run(self) -> None:
        try:
            saved = self._store.load_state()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot read the appliance state from the database: {exc}") from None
        if saved is not None:
            self._state = shifted(saved, self._clock.time() - self._clock.wall())
        self._record_restart()
        self._refresh_ambient(force=True)
        while True:
            try:
                item = self._inbox.get(timeout=self._sleep_for())
            except queue.Empty:
                item = Tick()
            if isinstance(item, Stop):
                log.info("%s: stopping", item.why)
                self._sign_checkpoint(force=True)
                return
            self._serve(item)

    def _sign_checkpoint(self, *, force: bool = False) -> None:
        """A checkpoint when one is due even without a commit, and on every clean stop."""
        try:
            signed = self._store.checkpoint(self._context(), force=force)
        except (StoreError, sqlite3.Error) as exc:
            log.error("could not sign a checkpoint: %s", exc)
            return
        if signed:
            self._publisher.wake()

    @property
    def store_fault(self) -> str | None:
        """The database failure the loop last met and is riding out, for the retained status."""
        return self._store_fault

    def status(self) -> dict[str, Any]:
        """What the loop adds to the retained status; read from the publisher's thread."""
        body: dict[str, Any] = {"database": self._store_fault or "ok"}
        if self._config.agent is not None:
            body["receipts"] = dict(self._receipts)
            body["logoff"] = self._state.last_logoff
        return body

    def _serve(self, item: ReaderEvent | Input | Command | ReceiptMessage | BreakGlassButton) -> None:
        """Every database failure of a wake lands here, whichever read or write met it.

        A write the store refused was already answered where it happened (nothing accepted);
        a failed read (directory lookup, revocation check) must not end the loop either: the
        cart keeps serving what it can, says so once, and tries again on the next wake.
        """
        try:
            if self._restart_pending:
                self._record_restart()
            if self._restart_pending:
                self._hold(item)
            else:
                while self._deferred:
                    self._dispatch(self._deferred.popleft())
                self._dispatch(item)
            self._after_each_wake()
        except sqlite3.Error as exc:
            self._store_failed(exc, noticed=not isinstance(item, Tick))
            return
        if self._store_fault is not None:
            log.info("the database answers again")
            self._store_fault = None

    def _store_failed(self, exc: sqlite3.Error, *, noticed: bool) -> None:
        """One log line per distinct failure; the device-error cue whenever someone is waiting."""
        fault = f"database read failed: {exc}"
        if fault != self._store_fault:
            log.error("%s; the appliance keeps serving and will retry", fault)
        if noticed or self._store_fault is None:
            self._feedback.show(Cue.DEVICE_ERROR)
        self._store_fault = fault

    def _record_restart(self) -> None:
        """Retried on every wake, at least every RESTART_RETRY_S, until the store takes it."""
        try:
            self._step_and_commit(Restart())
        except StoreError as exc:
            if not self._restart_refused:
                log.error("could not record the restart: %s; no tap is accepted until it is", exc)
                self._feedback.show(Cue.DEVICE_ERROR)
            self._restart_refused = True
            return
        self._restart_pending = False
        if self._restart_refused:
            log.info("restart recorded; taps are accepted again")

    def _hold(self, item: ReaderEvent | Input | Command | ReceiptMessage | BreakGlassButton) -> None:
        """While the Restart waits: a tap is refused at once, the rest waits for its turn."""
        match item:
            case BadgePresented(reader=reader) | BadRead(reader=reader):
                log.warning("tap on %s not accepted: the restart is not recorded yet", reader)
                self._feedback.show(Cue.DEVICE_ERROR)
            case Tick():
                pass
            case _:
                self._deferred.append(item)

    def _dispatch(self, item: ReaderEvent | Input | Command | ReceiptMessage | BreakGlassButton) -> None:
        match item:
            case BreakGlassButton():
                log.info("break-glass button pressed: the next tap asks for emergency access")
                self._gestures.arm(self._clock.time())
            case BadgePresented() | BadgeRemoved() | BadRead():
                self._reader_event(item)
            case ReceiptMessage(payload=payload):
                self._receipt(payload)
            case Command(name=name, payload=payload):
                order = self._commands.handle(name, payload, self._clock.wall())
                if order is not None:
                    self._obey(order)
                self._data_version, self._next_directory_check = -1, 0.0
            case _:
                self._apply(item)

    def _reader_event(self, event: ReaderEvent) -> None:
        match event:
            case BadgePresented(reader=reader, identifier=identifier, technology=technology, expired=expired):
                ref = self._secret.ref(identifier)
                badge = self._directory.lookup(ref)
                staff_id, role = (badge.staff_id, badge.role) if badge else (None, None)
                rejection = "piv_expired" if expired else None
                tap = Tap(reader, ref, staff_id, revoked=bool(badge and badge.revoked), rejection=rejection, role=role)
                if not self._gestures.presented(reader, ref, technology, self._clock.time()):
                    self._apply(tap)
                    return
                judged = self._apply(tap, quiet=True)
                asked = self._break_glass(reader, ref, expired=expired, quiet=True)
                cues = [cue_for(outcome) for outcome in (asked, judged) if outcome is not None]
                cue = next((cue for cue in cues if cue is not None), None)
                if cue is not None:
                    self._feedback.show(cue)
            case BadgeRemoved(reader=reader, identifier=identifier, card_pulled=card_pulled):
                ref = self._secret.ref(identifier)
                self._gestures.removed(reader, ref)
                self._apply(Lift(reader, ref, card_pulled))
            case BadRead(reader=reader, reason=reason, problem=problem):
                log.warning("card refused on %s: %s", reader, problem)
                self._apply(Tap(reader, None, None, rejection=reason))

    def _break_glass(self, reader: str, ref: str, *, expired: bool = False, quiet: bool = False) -> Outcome | None:
        """The directory is read again at this moment: the badge may have been enrolled since."""
        badge = self._directory.lookup(ref)
        staff_id, role = (badge.staff_id, badge.role) if badge else (None, None)
        revoked = bool(badge and badge.revoked)
        asked = BreakGlass(reader, ref, staff_id, revoked=revoked, role=role, expired=expired)
        return self._apply(asked, quiet=quiet)

    def _receipt(self, payload: bytes) -> None:
        """Checked here, at the edge; judged by the core. Whatever it is, it is counted."""
        checked = check_receipt(payload, self._config.appliance.device_id, self._agent_keys)
        if isinstance(checked, str):
            log.warning("receipt ignored: %s", checked.replace("_", " "))
            self._receipts[checked] += 1
            return
        outcome = self._apply(checked)
        if outcome is None:
            return
        verdict = outcome.ignored or "accepted"
        if outcome.ignored:
            log.warning("receipt for %s ignored: %s", checked.for_id, outcome.ignored.replace("_", " "))
        self._receipts[verdict] += 1

    def _obey(self, order: Order) -> None:
        """The command's id goes into the commit of what it did; the answer follows that commit."""
        try:
            outcome = self._step_and_commit(order.input, command=order.seen)
        except StoreError as exc:
            log.error("could not record the %s command: %s; it is answered unavailable", order.name, exc)
            self._commands.settle(order, self._clock.wall(), failure=str(exc))
            return
        self._commands.settle(order, self._clock.wall(), ignored=outcome.ignored)

    def _apply(self, event_input: Input, *, quiet: bool = False) -> Outcome | None:
        try:
            return self._step_and_commit(event_input, quiet=quiet)
        except StoreError as exc:
            log.error("could not record %s: %s; nothing was accepted", type(event_input).__name__, exc)
            self._feedback.show(Cue.DEVICE_ERROR)
            return None

    def _step_and_commit(
        self, event_input: Input, command: SeenCommand | None = None, *, quiet: bool = False
    ) -> Outcome:
        """Raises StoreError, having changed nothing, when the store refuses the commit.

        With `command` there is always a commit, even of nothing: its id is remembered either way.
        `quiet`: the caller shows one cue for this input and the next (a tap that claims the
        break-glass button), so the clinician does not hear "rejected" cut off by "granted".
        """
        now = self._clock.time()
        outcome = step(self._state, event_input, now, self._policy, self._new_id, self._agent)
        changed = bool(outcome.events) or outcome.state.mode != self._state.mode
        changed = changed or outcome.state.waiting != self._state.waiting
        warned = outcome.state.warned_lock_at is not None and self._state.warned_lock_at is None
        changed = changed or outcome.state.warned_lock_at != self._state.warned_lock_at
        stored: list[StoredEvent] = []
        if changed or command is not None:
            to_wall = self._clock.wall() - now
            stamped = tuple(replace(event, time=event.time + to_wall) for event in outcome.events)
            stored = self._store.commit(shifted(outcome.state, to_wall), stamped, self._context(), command)
        self._state = outcome.state
        cue = Cue.IDLE_WARNING if warned else cue_for(outcome)
        if cue is not None and not quiet:
            self._feedback.show(cue)
        self._store.sign(stored)
        for event in outcome.events:
            log.info("%s", describe(event))
        if outcome.ignored and isinstance(event_input, Tap | BreakGlass):
            kind = "tap" if isinstance(event_input, Tap) else "break-glass"
            log.info("%s ignored on %s: %s", kind, event_input.reader, outcome.ignored)
        if changed:
            self._publisher.wake()
            self._refresh_ambient(force=True)
        return outcome

    def _context(self) -> EventContext:
        appliance = self._config.appliance
        return EventContext(appliance.site, appliance.device_id, appliance.reader_id, self._clock_synced())

    def _after_each_wake(self) -> None:
        if self._restart_pending:
            self._refresh_ambient()
            self._heartbeat()
            return
        now = self._clock.time()
        deadline = next_deadline(self._state, self._policy, self._agent)
        if deadline is not None and deadline <= now:
            self._apply(Tick())
        warn_at = idle_warning_due(self._state, self._policy)
        if warn_at is not None and warn_at <= now:
            self._apply(WarnIdle())
        for reader, ref in self._gestures.held(now):
            self._break_glass(reader, ref)
        if now >= self._next_directory_check:
            self._next_directory_check = now + DIRECTORY_POLL_S
            self._check_revocation()
        self._sign_checkpoint()
        self._refresh_ambient()
        self._heartbeat()

    def _check_revocation(self) -> None:
        """Notice a directory change made by another process (CLI import or revoke) or a
        directory command: a revocation, or a new role for the holder's badge."""
        version = int(self._conn.execute("PRAGMA data_version").fetchone()[0])
        if version == self._data_version:
            return
        self._data_version = version
        custody = self._state.custody
        if custody is not None and not self._directory.is_honoured(custody.staff_id):
            self._apply(Revoked(custody.staff_id))
        custody = self._state.custody
        badge = self._directory.lookup(custody.badge_ref) if custody is not None else None
        if custody is not None and badge is not None and badge.staff_id == custody.staff_id:
            self._apply(HolderRole(custody.staff_id, badge.role))

    def _sleep_for(self) -> float:
        if self._restart_pending:
            return RESTART_RETRY_S
        now = self._clock.time()
        wake_at = [self._next_directory_check]
        deadline = next_deadline(self._state, self._policy, self._agent)
        if deadline is not None:
            wake_at.append(deadline)
        warn_at = idle_warning_due(self._state, self._policy)
        if warn_at is not None:
            wake_at.append(warn_at)
        wake_at.extend(self._gestures.deadlines())
        return max(0.0, min(DIRECTORY_POLL_S, *(moment - now for moment in wake_at)))

    def _refresh_ambient(self, *, force: bool = False) -> None:
        online = self._publisher.connected
        blocked = self._publisher.blocked is not None or self._publisher.fault is not None
        if force or (online, blocked) != (self._online, self._outbox_blocked):
            self._online, self._outbox_blocked = online, blocked
            warning = self._state.unconfirmed_warning
            self._feedback.set_ambient(self._state.mode, online, fault=blocked, warning=warning)
