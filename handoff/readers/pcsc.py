"""Smartcards through pyscard and pcscd, watched with SCardGetStatusChange.

The reader thread blocks inside pcscd until something changes: a card inserted or pulled, a
reader plugged or unplugged (the `\\\\?PnP?\\Notification` pseudo-reader). No polling. pyscard's
own CardMonitor dies silently when pcscd restarts, so this keeps its own context and
re-establishes it with backoff when pcscd goes away.
"""

from __future__ import annotations

import time
from typing import Any, Final

from smartcard import scard

from handoff.readers.apdu import CardExpired, CardRejected, Identify, split_response
from handoff.readers.backoff import reopen_delay
from handoff.readers.base import BadgePresented, BadgeRemoved, BadRead, Emit
from handoff.readers.chuid import read_uid_or_chuid
from handoff.readers.worker import ReaderWorker

PNP: Final = "\\\\?PnP?\\Notification"
WAIT_MS: Final = 60_000
LINK_ATTEMPTS: Final = 3
LINK_RETRY_S: Final = 0.1


class PcscReader(ReaderWorker):
    kind = "pcsc"

    def __init__(
        self, name_filter: str, identify: Identify = read_uid_or_chuid, *, lock_on_card_removal: bool = False
    ) -> None:
        super().__init__(f"pcsc:{name_filter or '*'}")
        self.name_filter = name_filter
        self._identify = identify
        self._lock_on_card_removal = lock_on_card_removal
        """Only a card taken out of a reader locks; a reader unplugged or pcscd restarting does not."""
        self._context: Any = None
        self._inserted: dict[str, bytes | None] = {}

    def _interrupt(self) -> None:
        """SCardGetStatusChange blocks inside pcscd: cancel it so close() is immediate."""
        context = self._context
        if context is not None:
            scard.SCardCancel(context)

    def _run(self, emit: Emit) -> None:
        failures = 0
        while not self._stop.is_set():
            result, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
            if result != scard.SCARD_S_SUCCESS:
                failures += 1
                self._set_health(False, f"pcscd is not reachable ({_error(result)}); retrying")
                self._stop.wait(reopen_delay(failures))
                continue
            self._context = context
            try:
                failures = 0 if self._watch(context, emit) else failures + 1
            finally:
                self._context = None
                scard.SCardReleaseContext(context)
            for reader, identifier in list(self._inserted.items()):
                if identifier is not None:
                    emit(BadgeRemoved(_label(reader), identifier, time.monotonic()))
            self._inserted.clear()
            if not self._stop.is_set():
                self._stop.wait(reopen_delay(max(1, failures)))

    def _watch(self, context: Any, emit: Emit) -> bool:
        """Follow readers and cards until pcscd goes away or close() cancels; False on failure."""
        states: dict[str, int] = {}
        pnp_state = scard.SCARD_STATE_UNAWARE
        while not self._stop.is_set():
            readers = self._matching_readers(context)
            if readers is None:
                return False
            states = {reader: states.get(reader, scard.SCARD_STATE_UNAWARE) for reader in readers}
            for gone in set(self._inserted) - set(readers):
                identifier = self._inserted.pop(gone)
                if identifier is not None:
                    emit(BadgeRemoved(_label(gone), identifier, time.monotonic()))
            self._set_health(bool(readers), f"watching {', '.join(readers)}" if readers else self._no_reader_detail())
            request = [(reader, state) for reader, state in states.items()] + [(PNP, pnp_state)]
            result, changed = scard.SCardGetStatusChange(context, WAIT_MS, request)
            if result == scard.SCARD_E_TIMEOUT:
                continue
            if result == scard.SCARD_E_CANCELLED:
                return True
            if result != scard.SCARD_S_SUCCESS:
                self._set_health(False, f"pcscd stopped answering ({_error(result)}); reconnecting")
                return False
            for reader, event_state, _atr in changed:
                if reader == PNP:
                    pnp_state = event_state & ~scard.SCARD_STATE_CHANGED
                if reader not in states:
                    continue
                states[reader] = event_state & ~scard.SCARD_STATE_CHANGED
                self._card_state(context, reader, event_state, emit)
        return True

    def _card_state(self, context: Any, reader: str, event_state: int, emit: Emit) -> None:
        present = bool(event_state & scard.SCARD_STATE_PRESENT) and not event_state & scard.SCARD_STATE_MUTE
        if present and reader not in self._inserted:
            read = self._read(context, reader, emit)
            self._inserted[reader] = identifier = read.identifier if isinstance(read, CardExpired) else read
            if identifier is not None:
                expired = isinstance(read, CardExpired)
                emit(BadgePresented(_label(reader), identifier, "iso7816", time.monotonic(), expired=expired))
        elif not present and reader in self._inserted:
            identifier = self._inserted.pop(reader)
            if identifier is not None:
                emit(BadgeRemoved(_label(reader), identifier, time.monotonic(), self._lock_on_card_removal))

    def _read(self, context: Any, reader: str, emit: Emit) -> bytes | CardExpired | None:
        """Identify the card, retrying a dropped link: a card still settling in the field often drops one.

        An expired card is identified all the same (returned as its `CardExpired`): it is a
        presence like any other, refused by the core unless its holder breaks the glass.
        """
        for attempt in range(1, LINK_ATTEMPTS + 1):
            try:
                return self._identify_once(context, reader)
            except CardExpired as expired:
                return expired
            except _LinkLost as lost:
                if attempt == LINK_ATTEMPTS:
                    emit(BadRead(_label(reader), lost.reason, str(lost), time.monotonic()))
                else:
                    self._stop.wait(LINK_RETRY_S)
            except CardRejected as rejected:
                emit(BadRead(_label(reader), rejected.reason, str(rejected), time.monotonic()))
                return None
        return None

    def _identify_once(self, context: Any, reader: str) -> bytes:
        result, card, protocol = scard.SCardConnect(
            context, reader, scard.SCARD_SHARE_SHARED, scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
        )
        if result != scard.SCARD_S_SUCCESS:
            raise _LinkLost("unreadable", f"cannot connect to the card: {_error(result)}")

        def transmit(apdu: bytes) -> tuple[bytes, int]:
            status, response = scard.SCardTransmit(card, protocol, list(apdu))
            if status != scard.SCARD_S_SUCCESS:
                raise _LinkLost("unreadable", f"the card stopped answering: {_error(status)}")
            return split_response(response)

        try:
            return self._identify(transmit)
        finally:
            scard.SCardDisconnect(card, scard.SCARD_LEAVE_CARD)

    def _matching_readers(self, context: Any) -> list[str] | None:
        result, readers = scard.SCardListReaders(context, [])
        if result in (scard.SCARD_E_NO_READERS_AVAILABLE, scard.SCARD_S_SUCCESS):
            return sorted(r for r in (readers or []) if self.name_filter in r)
        self._set_health(False, f"pcscd cannot list readers ({_error(result)}); reconnecting")
        return None

    def _no_reader_detail(self) -> str:
        wanted = f"whose name contains {self.name_filter!r}" if self.name_filter else "at all"
        return f"no PC/SC reader {wanted}; plug one in (waiting)"


class _LinkLost(CardRejected):
    """The card or reader dropped the connection, as opposed to answering nonsense."""


def _label(reader: str) -> str:
    return f"pcsc:{reader}"


def _error(code: int) -> str:
    return str(scard.SCardGetErrorMessage(code)).strip().rstrip(".")
