"""PKI-CAK: read the Card Authentication certificate, check it chains to the site's anchors and is
in date, then make the card sign a fresh random challenge with key 9E (no PIN) and verify it.

A copied certificate is public; only the card holds the private key, and a recorded signature
fails against the next challenge. Each failed check has its own rejection reason, so biomed and
the SIEM can tell a cloned card (`piv_signature`) from an unknown issuer (`piv_chain`), an
expired card (`piv_expired`) or a card that is not PIV at all (`piv_missing`).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.serialization import Encoding

from handoff.errors import ConfigError
from handoff.readers.apdu import SW_OK, CardExpired, CardRejected, Identify, Transmit
from handoff.readers.chuid import SELECT_PIV, get_response_chain
from handoff.readers.piv.apdu import ALG_ECC_P256, ALG_RSA_2048, GET_CAK_CERTIFICATE, KEY_CARD_AUTH, send_chained, tlv
from handoff.readers.tlv import parse_tlv

SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


def load_anchors(path: Path) -> list[x509.Certificate]:
    try:
        anchors = x509.load_pem_x509_certificates(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"readers.trust_anchors: {path} cannot be read: {exc.strerror}") from None
    except ValueError:
        raise ConfigError(f"readers.trust_anchors: {path} holds no PEM certificate") from None
    return anchors


def rsa_challenge_block(digest: bytes) -> bytes:
    """EMSA-PKCS1-v1_5 of a SHA-256 digest, 256 bytes: the card signs it raw, as PIV RSA keys do."""
    info = SHA256_DIGEST_INFO + digest
    return b"\x00\x01" + b"\xff" * (256 - 3 - len(info)) + b"\x00" + info


def cak_identify(
    anchors: Sequence[x509.Certificate], now: Callable[[], datetime], entropy: Callable[[int], bytes] = os.urandom
) -> Identify:
    def identify(transmit: Transmit) -> bytes:
        _, selected = transmit(SELECT_PIV)
        if selected != SW_OK and selected >> 8 != 0x61:
            raise CardRejected("piv_missing", f"no PIV application on the card (status {selected:04X})")
        certificate = _read_certificate(transmit)
        _check_chain(certificate, anchors)
        _check_possession(transmit, certificate, entropy)
        _check_dates(certificate, now())
        return card_identifier(certificate)

    return identify


def card_identifier(certificate: x509.Certificate) -> bytes:
    """The card UUID from the certificate's `urn:uuid:` name, else a digest of the certificate."""
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        names = None
    for uri in names.get_values_for_type(x509.UniformResourceIdentifier) if names else []:
        if uri.lower().startswith("urn:uuid:"):
            try:
                return uuid.UUID(uri[9:]).bytes
            except ValueError:
                continue
    return hashlib.sha256(certificate.public_bytes(Encoding.DER)).digest()[:16]


def _read_certificate(transmit: Transmit) -> x509.Certificate:
    try:
        container = dict(parse_tlv(get_response_chain(transmit, GET_CAK_CERTIFICATE), "piv_missing"))
        inner = dict(parse_tlv(container.get(0x53, b""), "piv_missing"))
    except CardRejected as missing:
        raise CardRejected("piv_missing", f"no card authentication certificate: {missing}") from None
    if 0x70 not in inner:
        raise CardRejected("piv_missing", "the certificate object holds no certificate")
    if inner.get(0x71, b"\x00")[:1] not in (b"\x00", b""):
        raise CardRejected("piv_missing", "compressed certificates are not accepted")
    try:
        return x509.load_der_x509_certificate(inner[0x70])
    except ValueError:
        raise CardRejected("piv_missing", "the card authentication certificate is malformed") from None


def _check_chain(certificate: x509.Certificate, anchors: Sequence[x509.Certificate]) -> None:
    for anchor in anchors:
        if anchor.subject != certificate.issuer:
            continue
        try:
            certificate.verify_directly_issued_by(anchor)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return
    raise CardRejected("piv_chain", "the card certificate is not issued by a trusted anchor")


def _check_dates(certificate: x509.Certificate, moment: datetime) -> None:
    """Checked last: an out-of-date card that passed the rest is its holder's, known for break-glass."""
    if not certificate.not_valid_before_utc <= moment <= certificate.not_valid_after_utc:
        raise CardExpired(card_identifier(certificate), "the card certificate is outside its validity dates")


def _check_possession(transmit: Transmit, certificate: x509.Certificate, entropy: Callable[[int], bytes]) -> None:
    key = certificate.public_key()
    digest = hashlib.sha256(entropy(32)).digest()
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1":
        algorithm, challenge = ALG_ECC_P256, digest
    elif isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048:
        algorithm, challenge = ALG_RSA_2048, rsa_challenge_block(digest)
    else:
        raise CardRejected("piv_missing", "the card key is neither ECC P-256 nor RSA 2048")
    request = tlv(0x7C, tlv(0x82, b"") + tlv(0x81, challenge))
    answer = send_chained(transmit, 0x87, algorithm, KEY_CARD_AUTH, request, "piv_signature")
    try:
        template = dict(parse_tlv(dict(parse_tlv(answer, "piv_signature")).get(0x7C, b""), "piv_signature"))
    except CardRejected:
        raise CardRejected("piv_signature", "the card's answer to the challenge is malformed") from None
    signature = template.get(0x82, b"")
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        raise CardRejected("piv_signature", "the card did not prove it holds the certificate's key") from None
