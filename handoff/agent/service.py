"""`handoff agent`: ends the session on the attached device when the appliance says so, and
proves it with a signed receipt (docs/agent.md).

One thread owns the journal and runs the actions; the publisher's thread only notes each
incoming event (committing it before the broker gets its PUBACK) and wakes it. Receipts and
activity reports leave through the agent's own outbox (handoff.agent.database) and the same
publisher as the appliance's, with the appliance's presence (state, status, last will) left to
the appliance.
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from handoff import __version__, compact_json
from handoff.agent import database
from handoff.agent.actions import run_actions
from handoff.agent.config import AgentFileConfig
from handoff.agent.journal import Due, Journal
from handoff.agent.logind import Logind, LogindError
from handoff.agent.notify import DesktopWarning, NotifyError
from handoff.audit.signature import event_signature_ok, signature_ok
from handoff.commands.signing import sign_command
from handoff.mqtt.publisher import Publisher
from handoff.mqtt.topics import Topics
from handoff.outbox import Outbox
from handoff.receipt import ActionOutcome, agent_source, make_receipt
from handoff.timefmt import rfc3339

log = logging.getLogger("handoff.agent")

FLUSH_ON_STOP_S: Final = 3.0
INTERRUPTED: Final = "the agent stopped while acting; not run again"
MAX_STATE_BYTES: Final = 4096
MAX_WARNING_LEAD_S: Final = 300.0
"""The appliance warns at most 30 s ahead; a lock announced further off than this, even allowing
for two clocks that disagree, is not believed."""


@dataclass(frozen=True)
class StopAgent:
    why: str


def distrust(event: Any, device_id: str, keys: Sequence[Ed25519PublicKey]) -> str | None:
    """Why the event is not to be believed, or None: it must be signed by this cart's appliance
    key and be about this device. The topic it came on proves nothing; anyone may publish there."""
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not isinstance(event.get("data"), dict):
        return "malformed"
    if not event_signature_ok(event, keys):
        return "bad_signature"
    if event.get("subject") != device_id or event["data"].get("device_id") != device_id:
        return "wrong_device"
    return None


@dataclass(frozen=True)
class LockWarning:
    """What the appliance's retained state says of the idle lock: when it comes, or None."""

    lock_at: float | None


def lock_warning(payload: bytes, keys: Sequence[Ed25519PublicKey]) -> LockWarning | None:
    """The appliance's `state` message read for `idle_lock_at`; None when it is not one.

    Only a state signed by this cart's appliance key counts, as for events: anyone allowed to
    publish on the state topic could otherwise put a false warning on the screen.
    """
    if len(payload) > MAX_STATE_BYTES:
        return None
    try:
        state = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    if not isinstance(state, dict) or not signature_ok(state, keys):
        return None
    announced = state.get("idle_lock_at")
    if state.get("state") != "in_use" or announced is None:
        return LockWarning(None)
    if not isinstance(announced, str) or not announced.endswith("Z"):
        return None
    try:
        return LockWarning(datetime.fromisoformat(announced).timestamp())
    except ValueError:
        return None


def actionable(event: dict[str, Any]) -> bool:
    """A forced_logoff, or a checkin with reason `returned`: the session ends the agent acts on (docs/agent.md)."""
    kind = event.get("type")
    return kind == "org.handoff.forced_logoff" or (
        kind == "org.handoff.checkin" and event["data"].get("reason") == "returned"
    )


class AgentService:
    def __init__(
        self,
        config: AgentFileConfig,
        key: Ed25519PrivateKey,
        appliance_keys: Sequence[Ed25519PublicKey],
        *,
        logind: Logind | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        identity = config.agent
        self._config = config
        self._key = key
        self._appliance_keys = appliance_keys
        self._ignored: Counter[str] = Counter()
        """Events refused, by reason; on the publisher's thread only."""
        self._logind = logind or Logind()
        self._clock = clock
        self._source = agent_source(identity.site, identity.agent_id)
        self._journal = Journal(database.connect_checked(identity.data_dir), clock)
        self._arrivals = Journal(database.connect(identity.data_dir), clock)
        """The publisher thread's own connection: it notes events while the loop acts."""
        self._inbox: queue.SimpleQueue[StopAgent | LockWarning | None] = queue.SimpleQueue()
        topics = Topics(config.mqtt.topic_prefix, identity.site, identity.device_id)
        watched = {topics.under("events/forced_logoff"): self._arrived, topics.under("events/checkin"): self._arrived}
        warning = config.warning
        self._warning = DesktopWarning(warning.bus or "SESSION") if warning.kind == "notify" else None
        if self._warning is not None:
            watched[topics.state] = self._state_arrived
        self._publisher = Publisher(
            config.mqtt,
            topics,
            Outbox(database.connect(identity.data_dir)),
            source=self._source,
            version=__version__,
            disk=dict,
            subscriptions=watched,
        )
        self._idle_since: int | None = None
        self._logind_fault: str | None = None
        self._notify_fault: str | None = None
        self._odd_state_logged = False
        """The publisher thread's: one log line per run of state messages it cannot read, not one each."""

    def submit(self, item: StopAgent | LockWarning | None) -> None:
        """Thread-safe and signal-safe (SimpleQueue): None wakes the loop, a StopAgent ends it."""
        self._inbox.put(item)

    def run(self) -> None:
        self._publisher.start()
        activity = self._config.activity
        next_activity = self._clock()
        try:
            while True:
                self._act_on_everything_due()
                if activity.kind == "logind" and self._clock() >= next_activity:
                    next_activity = self._clock() + activity.min_interval_s
                    self._report_activity()
                wait = max(0.0, next_activity - self._clock()) if activity.kind == "logind" else None
                try:
                    item = self._inbox.get(timeout=wait)
                except queue.Empty:
                    continue
                if isinstance(item, StopAgent):
                    log.info("%s: stopping", item.why)
                    return
                if isinstance(item, LockWarning):
                    self._warn(item)
        finally:
            self._publisher.stop(flush_timeout=FLUSH_ON_STOP_S)

    def _arrived(self, payload: bytes) -> None:
        """On the publisher's thread, before the PUBACK: commit the event, then wake the loop."""
        try:
            event = json.loads(payload)
        except (ValueError, RecursionError):
            event = None
        why = distrust(event, self._config.agent.device_id, self._appliance_keys)
        if why is not None:
            self._ignore(why)
            return
        if not actionable(event):
            return
        try:
            self._arrivals.note(event)
        except sqlite3.Error as exc:
            log.error("could not record event %s: %s; it will not be acted on", event["id"], exc)
            return
        self.submit(None)

    def _ignore(self, why: str) -> None:
        """Counted, and logged at the 1st, 2nd, 4th, 8th... so that a flood cannot fill the log."""
        self._ignored[why] += 1
        total = self._ignored.total()
        if total & (total - 1) == 0:
            counts = ", ".join(f"{reason} {count}" for reason, count in sorted(self._ignored.items()))
            log.warning("ignored %d event(s) not signed by this cart's appliance key (%s)", total, counts)

    def _state_arrived(self, payload: bytes) -> None:
        """On the publisher's thread: only read; the D-Bus call is the loop's."""
        warning = lock_warning(payload, self._appliance_keys)
        if warning is None:
            if not self._odd_state_logged:
                log.warning("ignored a state message that does not read as the appliance's")
            self._odd_state_logged = True
            return
        self._odd_state_logged = False
        self.submit(warning)

    def _warn(self, warning: LockWarning) -> None:
        """Show, update or withdraw the warning; a failure is logged once until it changes."""
        assert self._warning is not None
        now = self._clock()
        lock_at = warning.lock_at
        try:
            if lock_at is not None and now < lock_at <= now + MAX_WARNING_LEAD_S:
                self._warning.show(lock_at, now)
                log.info("idle lock warning shown: the session locks in %.0f s", lock_at - now)
            elif self._warning.shown:
                self._warning.withdraw()
                log.info("idle lock warning withdrawn")
        except NotifyError as exc:
            if str(exc) != self._notify_fault:
                log.warning("cannot show the idle lock warning: %s", exc)
            self._notify_fault = str(exc)
            return
        self._notify_fault = None

    def _act_on_everything_due(self) -> None:
        while (due := self._journal.due()) is not None:
            if due.why == "resend":
                self._journal.resend(due.event_id)
                log.info("event %s came again: its receipt is sent again", due.event_id)
            else:
                self._answer(due)
            self._publisher.wake()

    def _answer(self, due: Due) -> None:
        actions = self._config.actions
        if due.why == "interrupted":
            outcomes = [ActionOutcome(action.kind, False, INTERRUPTED) for action in actions]
        else:
            self._journal.start(due.event_id)
            outcomes = run_actions(actions, due.event, self._logind)
        receipt = make_receipt(
            self._key,
            event=due.event,
            outcomes=outcomes,
            source=self._source,
            receipt_id=str(uuid.uuid4()),
            now=self._clock(),
        )
        self._journal.finish(due.event_id, receipt)
        data = due.event["data"]
        log.info(
            "%s for %s of %s: %s%s",
            receipt["data"]["result"],
            due.event["type"].removeprefix("org.handoff."),
            data.get("staff_id"),
            ", ".join(f"{o.kind} {'done' if o.done else 'failed'}" for o in outcomes),
            "".join(f" ({o.detail})" for o in outcomes if o.detail and not o.done),
        )

    def _report_activity(self) -> None:
        """Someone used the device since the last look (logind's idle hint is off, or changed):
        tell the appliance, signed, so its idle timer follows real use."""
        try:
            idle = self._logind.idle()
        except LogindError as exc:
            if str(exc) != self._logind_fault:
                log.warning("cannot read user activity: %s", exc)
            self._logind_fault = str(exc)
            return
        self._logind_fault = None
        moved = self._idle_since is not None and idle.since_usec != self._idle_since
        self._idle_since = idle.since_usec
        if idle.idle and not moved:
            return
        device = self._config.agent.device_id
        body = {"id": str(uuid.uuid4()), "issued_at": rfc3339(self._clock())}
        signed = sign_command(self._key, device, "activity", body)
        self._journal.queue("cmd/activity", body["id"], compact_json.dumps(signed).encode())
        self._publisher.wake()
