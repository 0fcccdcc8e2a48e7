"""Builds the running appliance from a validated config: the adapters around the one loop.

Start order puts the publisher and readers after the loop exists, so the first tap already
has somewhere to go; stop order drains readers first, then lets the publisher flush.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Final

from handoff import __version__, db
from handoff.audit.checkpoint import checkpoint_policy
from handoff.audit.keys import load_public_keys
from handoff.badge_ref import load_secret
from handoff.clock import clock_synced
from handoff.cloudevents import source
from handoff.commands.handler import CommandHandler
from handoff.config import Config
from handoff.disk import disk_state
from handoff.feedback.button import open_button
from handoff.feedback.output import Feedback, open_feedback
from handoff.mqtt.publisher import Publisher, PublisherSettings
from handoff.mqtt.topics import Topics
from handoff.readers.registry import ReaderSet, build_readers
from handoff.runtime.appliance import Appliance, Command, ReceiptMessage
from handoff.runtime.clock import SystemClock
from handoff.runtime.gestures import BreakGlassButton
from handoff.store import Store
from handoff.systemd import Heartbeat, Notifier

if TYPE_CHECKING:
    from handoff.feedback.gpio import BreakGlassPin

log = logging.getLogger("handoff")

FLUSH_ON_STOP_S: Final = 3.0


@dataclass
class Parts:
    appliance: Appliance
    readers: ReaderSet
    publisher: Publisher
    feedback: Feedback
    notifier: Notifier
    button: BreakGlassPin | None

    def run(self) -> None:
        self.publisher.start()
        self.readers.open(self.appliance.submit)
        self.notifier.ready(f"serving {len(self.readers.readers)} reader(s)")
        log.info("handoff %s running with %d reader(s)", __version__, len(self.readers.readers))
        try:
            self.appliance.run()
        finally:
            self.notifier.stopping()
            self.readers.close()
            self.publisher.stop(flush_timeout=FLUSH_ON_STOP_S)
            self.feedback.close()
            if self.button is not None:
                self.button.close()
            log.info("stopped")


def build(config: Config, new_id: Callable[[], str]) -> Parts:
    appliance_config = config.appliance
    secret = load_secret(appliance_config.badge_secret_file)
    command_file = appliance_config.command_key_file
    command_keys = load_public_keys(command_file, "appliance.command_key_file") if command_file else []
    agent_keys = load_public_keys(config.agent.keys_file, "agent.keys_file") if config.agent is not None else []
    policy = checkpoint_policy(config.audit)
    conn = db.connect_checked(appliance_config.data_dir)
    clock = SystemClock()
    readers = build_readers(config.readers)
    feedback = open_feedback(config.feedback.board, readers.lights())
    notifier = Notifier()
    owner: list[Appliance] = []
    """The publisher needs the loop's inbox and the loop needs the publisher: filled in below."""

    def on_command(name: str, payload: bytes) -> None:
        owner[0].submit(Command(name, payload))

    def on_receipt(payload: bytes) -> None:
        owner[0].submit(ReceiptMessage(payload))

    def on_button() -> None:
        if owner:
            owner[0].submit(BreakGlassButton())

    button = open_button(config.feedback.board, on_button)

    def health() -> list[dict[str, Any]]:
        return [asdict(h) for h in readers.health()]

    topics = Topics(config.mqtt.topic_prefix, appliance_config.site, appliance_config.device_id)
    publisher = Publisher(
        config.mqtt,
        topics,
        Store(db.connect(appliance_config.data_dir), checkpoints=policy),
        disk=lambda: disk_state(appliance_config.data_dir).as_dict(),
        source=source(appliance_config.site, appliance_config.reader_id),
        version=__version__,
        on_command=on_command,
        subscriptions={topics.receipts: on_receipt} if config.agent is not None else {},
        health_provider=health,
        loop_status=lambda: owner[0].status() if owner else {},
        settings=PublisherSettings(retention_days=config.outbox.retention_days),
        key=policy.key if policy is not None else None,
    )
    commands = CommandHandler(
        conn,
        appliance_config.device_id,
        command_keys,
        publisher.publish_result,
        allow_unsigned=appliance_config.allow_unsigned_commands,
        activity_keys=agent_keys,
    )
    appliance = Appliance(
        config,
        conn=conn,
        store=Store(conn, checkpoints=policy),
        secret=secret,
        feedback=feedback,
        publisher=publisher,
        clock=clock,
        new_id=new_id,
        clock_synced=clock_synced,
        commands=commands,
        heartbeat=Heartbeat(notifier, lambda: publisher.fault),
        agent_keys=agent_keys,
    )
    owner.append(appliance)
    return Parts(appliance, readers, publisher, feedback, notifier, button)
