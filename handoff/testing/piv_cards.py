"""A throwaway PIV PKI for tests: a CA, and cards good and bad, ECC P-256 or RSA 2048."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from handoff.sim.piv_card import CardKey, PivApplet

NOW = datetime.now(UTC)


class PivCa:
    def __init__(self, name: str = "Hospital PIV CA") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - timedelta(days=10))
            .not_valid_after(NOW + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def write(self, path: Path) -> Path:
        path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        return path

    def card(self, kind: str = "ecc", *, expired: bool = False) -> tuple[CardKey, x509.Certificate, bytes]:
        key: CardKey = (
            ec.generate_private_key(ec.SECP256R1()) if kind == "ecc" else rsa.generate_private_key(65537, 2048)
        )
        card_uuid = uuid.uuid4()
        ends = NOW - timedelta(days=1) if expired else NOW + timedelta(days=365)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Card Authentication")]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - timedelta(days=5))
            .not_valid_after(ends)
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(f"urn:uuid:{card_uuid}")]), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        return key, cert, card_uuid.bytes


def applet(key: CardKey, cert: x509.Certificate) -> PivApplet:
    return PivApplet(key, cert.public_bytes(serialization.Encoding.DER))


def write_card(directory: Path, key: CardKey, cert: x509.Certificate) -> tuple[Path, Path]:
    key_path, cert_path = directory / "card.key", directory / "card.pem"
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path
