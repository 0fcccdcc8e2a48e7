"""A virtual PIV card: answers as a real one would to SELECT, GET DATA and GENERAL AUTHENTICATE.

It signs with its own private key as a card does (ECC: the 32-byte challenge as a prehashed
digest; RSA: raw `m^d mod n` of the padded block the reader sent), so the appliance's checks
run unchanged against it through pcscd and vpcd.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from handoff.errors import UsageError
from handoff.readers.apdu import GET_UID
from handoff.readers.chuid import SELECT_PIV
from handoff.readers.piv.apdu import tlv
from handoff.readers.tlv import parse_tlv

OK = b"\x90\x00"
MAX_RESPONSE = 256

CardKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class PivApplet:
    def __init__(self, key: CardKey, certificate_der: bytes, uid: bytes | None = None) -> None:
        self._key = key
        self._object = tlv(0x53, tlv(0x70, certificate_der) + tlv(0x71, b"\x00") + tlv(0xFE, b""))
        self._uid = uid
        self._pending = b""
        self._chained = b""

    def respond(self, apdu: bytes) -> bytes:
        if apdu == GET_UID:
            return self._uid + OK if self._uid else b"\x6a\x81"
        if len(apdu) < 4:
            return b"\x67\x00"
        cla, ins = apdu[0], apdu[1]
        data = apdu[5 : 5 + apdu[4]] if len(apdu) > 5 else b""
        if apdu.startswith(SELECT_PIV[:5]):
            return OK if apdu[:14] == SELECT_PIV[:14] else b"\x6a\x82"
        if ins == 0xC0:
            return self._next_chunk()
        if ins == 0xCB:
            return self._send(self._object) if data == bytes.fromhex("5C035FC101") else b"\x6a\x82"
        if ins == 0x87:
            self._chained += data
            if cla & 0x10:
                return OK
            request, self._chained = self._chained, b""
            return self._authenticate(request)
        return b"\x6d\x00"

    def signature(self, challenge: bytes) -> bytes:
        if isinstance(self._key, ec.EllipticCurvePrivateKey):
            return self._key.sign(challenge, ec.ECDSA(Prehashed(hashes.SHA256())))
        numbers = self._key.private_numbers()
        value = pow(int.from_bytes(challenge, "big"), numbers.d, numbers.public_numbers.n)
        return value.to_bytes(self._key.key_size // 8, "big")

    def _authenticate(self, request: bytes) -> bytes:
        try:
            template = dict(parse_tlv(dict(parse_tlv(request)).get(0x7C, b"")))
        except Exception:
            return b"\x6a\x80"
        challenge = template.get(0x81)
        if not challenge:
            return b"\x6a\x80"
        return self._send(tlv(0x7C, tlv(0x82, self.signature(challenge))))

    def _send(self, data: bytes) -> bytes:
        self._pending = data
        return self._next_chunk()

    def _next_chunk(self) -> bytes:
        chunk, self._pending = self._pending[:MAX_RESPONSE], self._pending[MAX_RESPONSE:]
        if self._pending:
            return chunk + bytes([0x61, min(len(self._pending), 255) % 256])
        return chunk + OK


def load_applet(key_path: Path, cert_path: Path, uid: bytes) -> PivApplet:
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise UsageError(f"--piv-key/--piv-cert: cannot load {key_path} / {cert_path}: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise UsageError(f"--piv-key {key_path}: an ECC P-256 or RSA 2048 key is needed")
    return PivApplet(key, certificate.public_bytes(serialization.Encoding.DER), uid)
