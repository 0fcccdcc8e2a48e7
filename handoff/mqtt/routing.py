"""Inbound routing: each message the broker delivers goes to the one part that wants it."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from handoff.mqtt.rewind import RewindGuard
from handoff.mqtt.topics import Topics

Handler = Callable[[bytes], None]


class Router:
    def __init__(
        self,
        topics: Topics,
        guard: RewindGuard,
        on_command: Callable[[str, bytes], None],
        subscriptions: Mapping[str, Handler],
    ) -> None:
        self._topics = topics
        self._guard = guard
        self._on_command = on_command
        self._subscriptions = subscriptions
        """Further topics (full names) and who takes their messages: called on the publisher's
        thread before the message is acknowledged, so a handler that commits it loses nothing."""

    @property
    def topics(self) -> list[str]:
        return list(self._subscriptions)

    def route(self, topic: str, payload: bytes) -> None:
        if topic == self._topics.state and self._guard.watching:
            self._guard.retained_state(payload)
            return
        handler = self._subscriptions.get(topic)
        if handler is not None:
            handler(payload)
            return
        name = self._topics.command_name(topic)
        if name is not None:
            self._on_command(name, payload)
