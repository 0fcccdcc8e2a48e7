"""A real mosquitto with a mutual-TLS listener on a free loopback port, started per test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.kit.broker import Broker
from tests.kit.pki import Ca, write_cert, write_key


@dataclass
class TlsBroker:
    port: int
    ca_file: Path


@contextmanager
def tls_broker(ca: Ca, directory: Path, extra: str = "") -> Iterator[TlsBroker]:
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    cert = write_cert(ca.sign(name, key.public_key(), server=True), directory / "server.pem")
    key_file = write_key(key, directory / "server.key")
    ca_file = ca.write(directory / "ca.pem")
    tls = f"cafile {ca_file}\ncertfile {cert}\nkeyfile {key_file}\nrequire_certificate true\n"
    with Broker(directory, extra=tls + extra) as broker:
        yield TlsBroker(broker.port, ca_file)
