"""Opens the configured `[[readers]]` and merges them into one stream that names the reader."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from handoff.config import KeyboardReaderConfig, NfcReaderConfig, PcscReaderConfig, ReaderConfig
from handoff.errors import ConfigError
from handoff.piv.cak import cak_identify, load_anchors
from handoff.readers.base import Emit, Reader, ReaderHealth
from handoff.readers.keyboard import KeyboardReader
from handoff.readers.nfc import NfcReader
from handoff.readers.pcsc import PcscReader


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


def build_readers(configs: Sequence[ReaderConfig]) -> ReaderSet:
    return ReaderSet([_reader(config) for config in configs])


def _reader(config: ReaderConfig) -> Reader:
    if isinstance(config, NfcReaderConfig):
        return NfcReader(config.path)
    if isinstance(config, KeyboardReaderConfig):
        return KeyboardReader(config.match)
    if not isinstance(config, PcscReaderConfig):
        raise ConfigError(f"readers: kind {config.kind!r} is accepted by the config but has no driver in this build")
    if config.auth == "piv-cak" and config.trust_anchors is not None:
        anchors = load_anchors(config.trust_anchors)
        return PcscReader(
            config.name,
            identify=cak_identify(anchors, now=lambda: datetime.now(UTC)),
            lock_on_card_removal=config.lock_on_card_removal,
        )
    return PcscReader(config.name, lock_on_card_removal=config.lock_on_card_removal)
