"""PIV card authentication: every outcome against a virtual PIV card, and once through pcscd and vpcd."""

from __future__ import annotations

import queue
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given
from hypothesis import strategies as st

from handoff.config import PcscReaderConfig
from handoff.errors import ConfigError
from handoff.readers.apdu import CardRejected
from handoff.readers.base import BadgePresented, BadRead, ReaderEvent
from handoff.readers.piv.cak import cak_identify, load_anchors
from handoff.readers.registry import build_readers
from handoff.sim.piv_card import PivApplet
from tests.kit import pcscd
from tests.kit.cli import CliRunner
from tests.kit.pcscd import ONE_PCSCD
from tests.kit.piv_cards import NOW, PivCa, applet, write_card

pytestmark = ONE_PCSCD

Transmit = Callable[[bytes], tuple[bytes, int]]


def transmit_to(respond: Callable[[bytes], bytes]) -> Transmit:
    def transmit(apdu: bytes) -> tuple[bytes, int]:
        answer = respond(apdu)
        return answer[:-2], int.from_bytes(answer[-2:], "big")

    return transmit


def verify(ca: PivCa, card: PivApplet | Callable[[bytes], bytes], at: datetime = NOW) -> bytes:
    respond = card.respond if isinstance(card, PivApplet) else card
    return cak_identify([ca.cert], now=lambda: at)(transmit_to(respond))


@pytest.mark.parametrize("kind", ["ecc", "rsa"])
def test_good_card_is_accepted_with_its_uuid(kind: str) -> None:
    ca = PivCa()
    key, cert, card_uuid = ca.card(kind)
    assert verify(ca, applet(key, cert)) == card_uuid


@pytest.mark.parametrize("kind", ["ecc", "rsa"])
def test_wrong_key_for_the_certificate(kind: str) -> None:
    ca = PivCa()
    _, cert, _ = ca.card(kind)
    other_key, _, _ = ca.card(kind)
    with pytest.raises(CardRejected) as caught:
        verify(ca, applet(other_key, cert))
    assert caught.value.reason == "piv_signature"


def test_expired_certificate() -> None:
    ca = PivCa()
    key, cert, _ = ca.card(expired=True)
    with pytest.raises(CardRejected) as caught:
        verify(ca, applet(key, cert))
    assert caught.value.reason == "piv_expired"


def test_untrusted_issuer() -> None:
    ca, rogue = PivCa(), PivCa("Rogue CA")
    key, cert, _ = rogue.card()
    with pytest.raises(CardRejected) as caught:
        verify(ca, applet(key, cert))
    assert caught.value.reason == "piv_chain"


def test_issuer_with_the_same_name_but_another_key() -> None:
    ca, impostor = PivCa(), PivCa()
    key, cert, _ = impostor.card()
    with pytest.raises(CardRejected) as caught:
        verify(ca, applet(key, cert))
    assert caught.value.reason == "piv_chain"


def test_replayed_signature_fails_against_a_fresh_challenge() -> None:
    ca = PivCa()
    key, cert, _ = ca.card()
    genuine = applet(key, cert)
    recorded = genuine.signature(bytes(32))

    class Replayer(PivApplet):
        def signature(self, challenge: bytes) -> bytes:
            return recorded

    with pytest.raises(CardRejected) as caught:
        verify(ca, Replayer(key, cert.public_bytes(Encoding.DER)))
    assert caught.value.reason == "piv_signature"


@pytest.mark.parametrize("cut", [3, 50, 200])
def test_truncated_certificate_is_piv_missing(cut: int) -> None:
    ca = PivCa()
    key, cert, _ = ca.card()
    card = applet(key, cert)

    def truncating(apdu: bytes) -> bytes:
        answer = card.respond(apdu)
        return answer[:-2][:-cut] + answer[-2:] if apdu[1] == 0xCB else answer

    with pytest.raises(CardRejected) as caught:
        verify(ca, truncating)
    assert caught.value.reason == "piv_missing"


def test_card_without_piv_is_piv_missing() -> None:
    with pytest.raises(CardRejected) as caught:
        verify(PivCa(), lambda apdu: b"\x6a\x82")
    assert caught.value.reason == "piv_missing"


@given(st.binary(max_size=300))
def test_garbage_answers_only_ever_refuse(garbage: bytes) -> None:
    ca = PivCa.__new__(PivCa)
    ca.cert = SHARED_CA.cert
    try:
        verify(ca, lambda apdu: b"\x90\x00" if apdu[1] == 0xA4 else garbage + b"\x90\x00")
    except CardRejected as rejected:
        assert rejected.reason.startswith("piv_")


SHARED_CA = PivCa()


def test_anchors_file(tmp_path: Path) -> None:
    assert load_anchors(SHARED_CA.write(tmp_path / "anchors.pem"))[0] == SHARED_CA.cert
    (tmp_path / "bad.pem").write_text("nope")
    with pytest.raises(ConfigError, match="holds no PEM certificate"):
        load_anchors(tmp_path / "bad.pem")


def test_piv_reader_from_config_through_pcscd_and_vpcd(tmp_path: Path, cli: CliRunner) -> None:
    pcscd.ensure_running()
    ca = PivCa()
    key, cert, card_uuid = ca.card()
    other_key, _, _ = ca.card()
    events: queue.Queue[ReaderEvent] = queue.Queue()
    anchors = ca.write(tmp_path / "anchors.pem")
    reader = build_readers([PcscReaderConfig(name="Virtual PCD 00 00", auth="piv-cak", trust_anchors=anchors)])
    reader.open(events.put)
    try:
        good = tmp_path / "good"
        good.mkdir()
        key_path, cert_path = write_card(good, key, cert)
        result = cli("sim", "card", "04A1B2C3", "--piv-key", key_path, "--piv-cert", cert_path, "--hold", "0.3")
        assert result.returncode == 0, result.stderr
        seen = events.get(timeout=15)
        assert isinstance(seen, BadgePresented) and seen.identifier == card_uuid
        events.get(timeout=15)
        cloned = tmp_path / "cloned"
        cloned.mkdir()
        key_path, cert_path = write_card(cloned, other_key, cert)
        assert cli("sim", "card", "04A1B2C3", "--piv-key", key_path, "--piv-cert", cert_path).returncode == 0
        bad = events.get(timeout=15)
        assert isinstance(bad, BadRead) and bad.reason == "piv_signature"
    finally:
        reader.close()
