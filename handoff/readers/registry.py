"""Opens the configured `[[readers]]` and merges them into one stream that names the reader.

Each kind's driver is imported only when a reader of that kind is configured: a cart with one
NFC reader does not load evdev, pyscard, libosdp and pyudev, which cost it memory for as long
as it runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from handoff.config import KeyboardReaderConfig, NfcReaderConfig, OsdpReaderConfig, PcscReaderConfig, ReaderConfig
from handoff.feedback.output import Lights
from handoff.readers.base import Emit, Reader, ReaderHealth

if TYPE_CHECKING:
    from handoff.readers.osdp import OsdpReader


class ReaderSet:
    def __init__(self, readers: Sequence[Reader], lights: Sequence[Lights] = ()) -> None:
        self.readers = tuple(readers)
        self._lights = tuple(lights)

    def open(self, emit: Emit) -> None:
        for reader in self.readers:
            reader.open(emit)

    def health(self) -> list[ReaderHealth]:
        return [reader.health() for reader in self.readers]

    def close(self) -> None:
        for reader in self.readers:
            reader.close()

    def lights(self) -> list[Lights]:
        """Readers that are feedback outputs too: an OSDP reader's own LED and beeper."""
        return list(self._lights)


def build_readers(configs: Sequence[ReaderConfig]) -> ReaderSet:
    """Every reader, its key files read first: a missing or default key stops the start with one line."""
    readers: list[Reader] = []
    lights: list[Lights] = []
    for index, config in enumerate(configs):
        if isinstance(config, OsdpReaderConfig):
            osdp = _osdp_reader(index, config)
            readers.append(osdp)
            lights.append(osdp.lights)
        else:
            readers.append(_reader(config))
    return ReaderSet(readers, lights)


def _osdp_reader(index: int, config: OsdpReaderConfig) -> OsdpReader:
    from handoff.readers.osdp import OsdpReader
    from handoff.readers.scbk import load_scbk

    scbk = load_scbk(config.scbk_file, f"readers[{index}].scbk_file")
    return OsdpReader(config.port, config.address, config.baud, scbk)


def _reader(config: NfcReaderConfig | KeyboardReaderConfig | PcscReaderConfig) -> Reader:
    if isinstance(config, NfcReaderConfig):
        from handoff.readers.nfc import NfcReader

        return NfcReader(config.path)
    if isinstance(config, KeyboardReaderConfig):
        from handoff.readers.keyboard import KeyboardReader

        return KeyboardReader(config.match)
    from handoff.readers.pcsc import PcscReader

    if config.auth == "piv-cak" and config.trust_anchors is not None:
        from handoff.readers.piv.cak import cak_identify, load_anchors

        anchors = load_anchors(config.trust_anchors)
        return PcscReader(
            config.name,
            identify=cak_identify(anchors, now=lambda: datetime.now(UTC)),
            lock_on_card_removal=config.lock_on_card_removal,
        )
    return PcscReader(config.name, lock_on_card_removal=config.lock_on_card_removal)
