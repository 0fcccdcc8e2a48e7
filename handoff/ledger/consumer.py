"""`handoff ledger run`: one persistent MQTT session in, batched database commits, acks after.

The session lives in a process of its own (receiver.py); its manual acknowledgements hold each
message's PUBACK until the batch holding it has committed here: killed at any line, either
process, the ledger has either stored a message or the broker still has it for the next
session. Batching (up to BATCH_MAX messages, or BATCH_WAIT_S after the first) is what makes
ingest fast: one commit, one fsync, for many messages. The next batch's signatures are verified
while one is written (`Recorder.verify_ahead`); a batch taken but not yet written is simply not
acknowledged.

Nothing stops it: a database outage is waited out with the batch in hand (nothing acknowledged),
a batch the database refuses is retried message by message so that only the bad one is set
aside, the broker is reconnected by paho, and a session process that dies is replaced; each
outage is one line when it starts and one when it ends.
"""

from __future__ import annotations

import gc
import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Final, NamedTuple

from sqlalchemy import Connection, Engine

from handoff.ledger import health, retention
from handoff.ledger.config import LedgerConfig
from handoff.ledger.database import writing
from handoff.ledger.enrolment import recorder_for
from handoff.ledger.ingest import Ahead, Message, evaluate
from handoff.ledger.keys import LedgerKeys
from handoff.ledger.outage import is_outage, why
from handoff.ledger.receiver import BATCH_MAX, Ack, Receiver
from handoff.ledger.responder import Responder
from handoff.ledger.set_aside import put_aside
from handoff.ledger.unreachable import Outage
from handoff.mqtt.backoff import backoff_delay

log = logging.getLogger("handoff.ledger")

BATCH_WAIT_S: Final = 0.05
EVALUATE_EVERY_S: Final = 1.0
RETRY_BASE_S: Final = 0.5
RETRY_CAP_S: Final = 30.0


class _Stopping(Exception):
    """Raised out of a wait for the database when the ledger is told to stop."""


class _Batch(NamedTuple):
    messages: list[Message]
    acks: list[Ack]
    arrived: float | None
    """When the oldest of them reached the ledger's MQTT process."""


NOTHING: Final = _Batch([], [], None)


class Consumer:
    """Takes its batches from `receiver`, a started MQTT session, until `stopping` is set; `keys`
    as loaded before the session started."""

    def __init__(
        self,
        config: LedgerConfig,
        engine: Engine,
        keys: LedgerKeys,
        receiver: Receiver,
        stopping: threading.Event,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._engine = engine
        self._clock = clock
        self._recorder = recorder_for(config, keys.audit)
        self._stopping = stopping
        self._committed = 0
        self._batches = 0
        self._committed_then = 0
        self._connected = False
        self._database = Outage("SQLite" if engine.dialect.name == "sqlite" else "PostgreSQL", clock)
        self._receiver = receiver
        self._responder = (
            Responder(keys.command, config.mqtt.topic_prefix, self._receiver.publish)
            if keys.command is not None
            else None
        )

    def run(self) -> None:
        """Everything made before the loop (imports, the schema, the clients) lives as long as the
        process: frozen out of the collector's sight, a full collection no longer walks it each
        time, which was about 15 us of CPU per event of a backlog (bench/README.md)."""
        gc.freeze()
        next_evaluation = next_health = next_pruning = 0.0
        since = self._clock()
        batch = NOTHING
        verdicts: Future[Ahead] | None = None
        try:
            while not self._stopping.is_set():
                upcoming = self._take_batch(wait=not batch.messages)
                coming = self._verify_ahead(upcoming)
                if batch.messages:
                    self._commit(batch, verdicts)
                    self._respond()
                batch, verdicts = upcoming, coming
                if self._clock() >= next_evaluation:
                    next_evaluation = self._clock() + EVALUATE_EVERY_S
                    self._evaluate()
                    self._respond()
                if self._clock() >= next_pruning:
                    next_pruning = self._clock() + retention.EVERY_S
                    self._prune()
                if self._clock() >= next_health:
                    next_health = self._clock() + health.EVERY_S
                    self._record_health(since, batch)
                    since, self._batches, self._committed_then = self._clock(), 0, self._committed
        except _Stopping:
            log.info("stopped while waiting for the database; the batch in hand stays with the broker")
        finally:
            self._stopping.set()
            log.info("stopped; %d messages taken from the broker and committed in this run", self._committed)

    def _take_batch(self, *, wait: bool) -> _Batch:
        """The next batch: once a message is pending, up to BATCH_WAIT_S for it to fill, even while
        a batch is waiting to be written (then `wait` is False, and nothing pending means nothing
        to wait for). Taking only what had arrived during the last commit made a backlog's
        batches a few hundred messages, each paying a dozen statements: filling them took a
        backlog from 1,900 to 2,450 events/s (bench/README.md)."""
        taken = self._receiver.take(BATCH_MAX, EVALUATE_EVERY_S / 2 if wait else 0.0, BATCH_WAIT_S)
        self._connected = taken.connected
        if self._responder is not None:
            for mid, refusal in taken.published:
                self._responder.acknowledged(mid, refusal)
        life, received = taken.life, taken.received
        return _Batch(
            [Message(topic, payload) for topic, payload in zip(received.topics, received.payloads, strict=True)],
            [Ack(life, mid, qos) for mid, qos in zip(received.mids, received.qos, strict=True)],
            taken.arrived,
        )

    def _verify_ahead(self, upcoming: _Batch) -> Future[Ahead] | None:
        """The head start on the next batch's signatures. It reads the enrolments, so in a
        database outage there is none: `apply` then verifies the batch itself, once the
        database is back."""
        try:
            return self._recorder.verify_ahead(self._engine, upcoming.messages)
        except Exception as exc:
            if not is_outage(exc):
                raise
            return None

    def _commit(self, batch: _Batch, verdicts: Future[Ahead] | None) -> None:
        messages = batch.messages
        if not self._waiting_out_outages(lambda conn: self._recorder.apply(conn, messages, self._clock(), verdicts)):
            for message in messages:
                self._alone(message)
        self._receiver.ack(batch.acks)
        self._committed += len(messages)
        self._batches += 1

    def _alone(self, message: Message) -> None:
        """One message of a refused batch, in a transaction of its own: set aside if refused."""
        refusal: list[BaseException] = []
        if not self._waiting_out_outages(lambda conn: self._recorder.apply(conn, [message], self._clock()), refusal):
            kept = self._waiting_out_outages(lambda conn: put_aside(conn, message, self._clock(), why(refusal[0])))
            if not kept:
                log.error("could not set aside a message on %r (%s): dropped", message.topic[:300], why(refusal[0]))

    def _waiting_out_outages(
        self, work: Callable[[Connection], object], refusal: list[BaseException] | None = None
    ) -> bool:
        """Runs `work` in a writing transaction until it commits (True) or fails for a reason
        other than an outage (False, the error appended to `refusal`). While the database is
        unreachable it retries with backoff; stopping interrupts the wait, and the batch in hand
        stays unacknowledged for the next session."""
        attempt = 0
        while True:
            try:
                with writing(self._engine) as conn:
                    work(conn)
            except Exception as exc:
                if not is_outage(exc):
                    self._database.up()
                    if refusal is not None:
                        refusal.append(exc)
                    return False
                self._database.down(why(exc))
                if self._stopping.wait(backoff_delay(attempt, RETRY_BASE_S, RETRY_CAP_S, random.random)):
                    raise _Stopping from None
                attempt += 1
            else:
                self._database.up()
                return True

    def _evaluate(self) -> None:
        settings = self._config.ledger
        now = self._clock()
        self._waiting_out_outages(
            lambda conn: evaluate(conn, now, settings.overdue_after_s, settings.offline_after_s, settings.holds_many)
        )

    def _respond(self) -> None:
        """Publish the commands the committed batches queued, and settle those acknowledged."""
        if self._responder is not None:
            responder = self._responder
            self._waiting_out_outages(lambda conn: responder.send(conn, self._connected, self._clock()))

    def _prune(self) -> None:
        """Retention (`ledger.retain_days`), once an hour and at start."""
        now, days = self._clock(), self._config.ledger.retain_days
        pruned: list[retention.Pruned] = []
        self._waiting_out_outages(lambda conn: pruned.append(retention.prune(conn, now, days)))
        if pruned and pruned[-1].events:
            log.info(
                "retention: pruned %d events older than %d days from %d sources",
                pruned[-1].events,
                days,
                pruned[-1].sources,
            )

    def _record_health(self, since: float, in_hand: _Batch) -> None:
        """`in_hand`: the batch taken and not yet written, older than anything the MQTT process holds."""
        now = self._clock()
        elapsed = max(now - since, 1e-9)
        oldest = in_hand.arrived
        state = health.Health(
            client_id=self._config.mqtt.client_id,
            updated=now,
            broker_connected=self._connected,
            lag_s=now - oldest if oldest is not None else 0.0,
            batch_rate=self._batches / elapsed,
            messages_per_s=(self._committed - self._committed_then) / elapsed,
        )
        self._waiting_out_outages(lambda conn: health.record(conn, state))
