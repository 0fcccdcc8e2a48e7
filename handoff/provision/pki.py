"""The reader's mutual-TLS identity: an ECDSA P-256 key that never leaves the cart, and a CSR.

The site CA signs the CSR; the subject names reader, site and device so the broker's ACL and
its audit log can tell carts apart.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def generate_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def load_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("not an EC private key")
    return key


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def reader_subject(reader_id: str, site: str, device_id: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, reader_id),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, site),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, device_id),
        ]
    )


def build_csr(key: ec.EllipticCurvePrivateKey, reader_id: str, site: str, device_id: str) -> bytes:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(reader_subject(reader_id, site, device_id))
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)
