"""The rewind guard: before anything is published, has the broker seen a higher `seq` from us?

It has when the database lost events (a deleted WAL, an emptied or restored file). The retained
state carries the last seq the broker took, and whose it is; the unsent events then move above
that number, so no `seq` is ever published twice.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from paho.mqtt.reasoncodes import ReasonCode

from handoff.audit.signature import signature_ok
from handoff.mqtt.errors import RewindNotRecorded
from handoff.outbox import StoreError
from handoff.store import Store

log = logging.getLogger("handoff.mqtt.publisher")

LARGEST_SEQ: Final = 2**63 - 1
"""SQLite's largest integer: a retained state claiming more is not ours (or is hostile), and
renumbering above it could not be stored."""


class RewindGuard:
    def __init__(self, store: Store | None, source: str, key: Ed25519PublicKey | None) -> None:
        self._store = store
        """None for the agent, whose outbox numbers only its own receipts: nothing to rebase."""
        self._source = source
        self._key = key
        """With a key, only a state this appliance signed counts: a forged one would push its
        numbering away."""
        self._state_mid: int | None = None
        self._commands_mid: int | None = None
        self._seen: dict[str, Any] | None = None
        self._read = False
        """Set once the retained state (if any) has arrived: the SUBACK after it says so."""
        self.checked = False

    @property
    def watching(self) -> bool:
        """Only the appliance reads its own retained state back; to the agent it is news to pass on."""
        return self._store is not None

    def subscribed(self, state_mid: int | None, commands_mid: int | None) -> None:
        """The state subscription, then another: its SUBACK comes after any retained state."""
        self._state_mid, self._commands_mid = state_mid, commands_mid

    def skip(self) -> None:
        """Without presence there is no retained state to compare with."""
        self.checked = True

    @property
    def due(self) -> bool:
        return self._read and not self.checked

    def suback(self, mid: int, reasons: list[ReasonCode]) -> None:
        if mid == self._state_mid and any(reason.is_failure for reason in reasons):
            log.warning(
                "broker refused to let us read back our retained state (%s): a lost database would go unnoticed",
                reasons[0],
            )
        if mid == self._commands_mid:
            self._read = True

    def retained_state(self, payload: bytes) -> None:
        if not self.checked:
            self._seen = _json_object(payload)

    def check(self) -> None:
        """Raises `RewindNotRecorded` when the unsent events had to move and could not."""
        self.checked = True
        seen = self._seen or {}
        if self._store is None:
            return
        broker_seq = seen.get("seq")
        if seen.get("source") != self._source or isinstance(broker_seq, bool) or not isinstance(broker_seq, int):
            return
        if not 0 < broker_seq <= LARGEST_SEQ:
            log.warning("the retained state claims seq %d, which no appliance reaches: ignored", broker_seq)
            return
        if self._key is not None and not signature_ok(seen, [self._key]):
            log.warning("ignored a retained state with this appliance's source that it did not sign")
            return
        try:
            rewind = self._store.rebase_above(
                broker_seq, _text_or_none(seen.get("event_id")), _text_or_none(seen.get("chain"))
            )
        except StoreError as exc:
            raise RewindNotRecorded(str(exc)) from None
        if rewind is not None:
            log.error("%s: events were lost from the database; consumers will see a jump in seq", rewind.describe())


def _json_object(payload: bytes) -> dict[str, Any] | None:
    """Anyone allowed to write the state topic can leave a retained message: it must not raise."""
    try:
        body = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    return body if isinstance(body, dict) else None


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None
