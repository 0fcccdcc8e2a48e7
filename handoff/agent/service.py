"""`handoff agent`: ends the session on the attached device when the appliance says so, and
proves it with a signed receipt (docs/agent.md).

One thread owns the journal and runs the actions; the publisher's thread only notes each
incoming event (committing it before the broker gets its PUBACK) and wakes it. Receipts and
activity reports leave through the appliance's own outbox and publisher, with the appliance's
presence (state, status, last will) left to the appliance.
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from handoff import __version__, compact_json, db
from handoff.agent.actions import run_actions
from handoff.agent.config import AgentFileConfig
from handoff.agent.journal import Due, Journal
from handoff.agent.logind import Logind, LogindError
from handoff.agent.receipt import ActionOutcome, agent_source, make_receipt
from handoff.commands.signing import sign_command
from handoff.mqtt.publisher import Publisher, PublisherSettings
from handoff.mqtt.topics import Topics
from handoff.store import Store
from handoff.timefmt import rfc3339

log = logging.getLogger("handoff.agent")

FLUSH_ON_STOP_S: Final = 3.0
INTERRUPTED: Final = "the agent stopped while acting; not run again"


@dataclass(frozen=True)
class StopAgent:
    why: str


def actionable(event: Any, device_id: str) -> bool:
    """A forced_logoff, or a checkin with reason `returned`, of this device."""
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or event.get("subject") != device_id:
        return False
    data = event.get("data")
    if not isinstance(data, dict) or data.get("device_id") != device_id:
        return False
    kind = event.get("type")
    return kind == "org.handoff.forced_logoff" or (kind == "org.handoff.checkin" and data.get("reason") == "returned")


class AgentService:
    def __init__(
        self,
        config: AgentFileConfig,
        key: Ed25519PrivateKey,
        *,
        logind: Logind | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        identity = config.agent
        self._config = config
        self._key = key
        self._logind = logind or Logind()
        self._clock = clock
        self._source = agent_source(identity.site, identity.agent_id)
        self._journal = Journal(db.connect_checked(identity.data_dir), clock)
        self._arrivals = Journal(db.connect(identity.data_dir), clock)
        """The publisher thread's own connection: it notes events while the loop acts."""
        self._inbox: queue.SimpleQueue[StopAgent | None] = queue.SimpleQueue()
        topics = Topics(config.mqtt.topic_prefix, identity.site, identity.device_id)
        watched = {topics.under("events/forced_logoff"): self._arrived, topics.under("events/checkin"): self._arrived}
        self._publisher = Publisher(
            config.mqtt,
            topics,
            Store(db.connect(identity.data_dir)),
            source=self._source,
            version=__version__,
            disk=dict,
            subscriptions=watched,
            settings=PublisherSettings(presence=False),
        )
        self._idle_since: int | None = None
        self._logind_fault: str | None = None

    def submit(self, item: StopAgent | None) -> None:
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
        finally:
            self._publisher.stop(flush_timeout=FLUSH_ON_STOP_S)

    def _arrived(self, payload: bytes) -> None:
        """On the publisher's thread, before the PUBACK: commit the event, then wake the loop."""
        try:
            event = json.loads(payload)
        except ValueError:
            log.warning("ignored a message that is not JSON on an events topic")
            return
        if not actionable(event, self._config.agent.device_id):
            return
        try:
            self._arrivals.note(event)
        except sqlite3.Error as exc:
            log.error("could not record event %s: %s; it will not be acted on", event["id"], exc)
            return
        self.submit(None)

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
