"""Topic names (docs/integration.md), in one place so every publisher and test agrees on them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topics:
    prefix: str
    site: str
    device_id: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.site}/{self.device_id}"

    def under(self, suffix: str) -> str:
        """`suffix` as stored in the outbox, e.g. `events/checkout`."""
        return f"{self.base}/{suffix}"

    @property
    def state(self) -> str:
        return self.under("state")

    @property
    def checkpoint(self) -> str:
        return self.under("checkpoint")

    @property
    def receipts(self) -> str:
        return self.under("receipts")

    @property
    def status(self) -> str:
        return self.under("status")

    @property
    def commands(self) -> str:
        return self.under("cmd/+")

    @property
    def cmd_result(self) -> str:
        return self.under("cmd_result")

    def command_name(self, topic: str) -> str | None:
        head = self.under("cmd/")
        name = topic[len(head) :] if topic.startswith(head) else ""
        return name if name and "/" not in name else None
