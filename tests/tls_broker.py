"""A real mosquitto with a mutual-TLS listener on a free loopback port, started per test."""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.netutil import free_tcp_port
from tests.pki_helpers import Ca, write_cert, write_key

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


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
    port = free_tcp_port()
    conf = directory / "mosquitto.conf"
    conf.write_text(
        f"user {getpass.getuser()}\npersistence false\nlog_dest stderr\n"
        f"listener {port} 127.0.0.1\ncafile {ca_file}\ncertfile {cert}\nkeyfile {key_file}\n"
        "require_certificate true\nallow_anonymous true\n" + extra
    )
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"mosquitto did not start: {proc.stderr.read() if proc.stderr else ''!r}"
                    ) from None
                time.sleep(0.05)
        yield TlsBroker(port, ca_file)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
