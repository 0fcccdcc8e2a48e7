"""A real mosquitto with a mutual-TLS listener on a free loopback port, started per test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.kit.broker import Broker
from tests.kit.pki import Ca, server_certificate


@dataclass
class TlsBroker:
    port: int
    ca_file: Path


@contextmanager
def tls_broker(ca: Ca, directory: Path, extra: str = "") -> Iterator[TlsBroker]:
    cert, key_file = server_certificate(ca, directory)
    ca_file = ca.write(directory / "ca.pem")
    tls = f"cafile {ca_file}\ncertfile {cert}\nkeyfile {key_file}\nrequire_certificate true\n"
    with Broker(directory, extra=tls + extra) as broker:
        yield TlsBroker(broker.port, ca_file)
