"""Opens the configured `[[readers]]` and merges them into one stream that names the reader."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from handoff.config import KeyboardReaderConfig, NfcReaderConfig, OsdpReaderConfig, ReaderConfig
from handoff.feedback.output import Lights
from handoff.readers.base import Emit, Reader, ReaderHealth
from handoff.readers.keyboard import KeyboardReader
from handoff.readers.nfc import NfcReader
from handoff.readers.osdp import OsdpReader
from handoff.readers.pcsc import PcscReader
from handoff.readers.piv.cak import cak_identify, load_anchors
from handoff.readers.scbk import load_scbk


class ReaderSet:
    def __init__(self, readers: Sequence[Reader]) -> None:
        self.readers = tuple(readers)

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
        return [reader.lights for reader in self.readers if isinstance(reader, OsdpReader)]


def build_readers(configs: Sequence[ReaderConfig]) -> ReaderSet:
    """Every reader, its key files read first: a missing or default key stops the start with one line."""
    return ReaderSet([_reader(index, config) for index, config in enumerate(configs)])


def _reader(index: int, config: ReaderConfig) -> Reader:
    if isinstance(config, NfcReaderConfig):
        return NfcReader(config.path)
    if isinstance(config, KeyboardReaderConfig):
        return KeyboardReader(config.match)
    if isinstance(config, OsdpReaderConfig):
        scbk = load_scbk(config.scbk_file, f"readers[{index}].scbk_file")
        return OsdpReader(config.port, config.address, config.baud, scbk)
    if config.auth == "piv-cak" and config.trust_anchors is not None:
        anchors = load_anchors(config.trust_anchors)
        return PcscReader(
            config.name,
            identify=cak_identify(anchors, now=lambda: datetime.now(UTC)),
            lock_on_card_removal=config.lock_on_card_removal,
        )
    return PcscReader(config.name, lock_on_card_removal=config.lock_on_card_removal)
