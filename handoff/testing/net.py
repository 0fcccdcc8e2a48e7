"""Free loopback ports for the brokers, readers and simulators the tests start, and waiting for them."""

from __future__ import annotations

import random
import socket
import subprocess
import time
from pathlib import Path


def _below_ephemeral() -> range:
    """Ports under the kernel's ephemeral range. A port the kernel chose with bind(0) comes from
    that range, so between choosing it and the server binding it the kernel could hand it to some
    process's outgoing connection: a console's port was taken that way once in a full run."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    return range(max(1024, low - 12768), low)


_PORTS = _below_ephemeral()
_CHOICE = random.SystemRandom()
"""Not the `random` module's generator: tests seed it, and every xdist worker would then try the
same ports in the same order."""


def _free_port(kind: socket.SocketKind) -> int:
    while True:
        port = _CHOICE.choice(_PORTS)
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def free_tcp_port() -> int:
    return _free_port(socket.SOCK_STREAM)


def free_udp_port() -> int:
    return _free_port(socket.SOCK_DGRAM)


def wait_listening(process: subprocess.Popen[bytes], port: int, log: Path, timeout: float = 60.0) -> None:
    """Until `process` accepts TCP on 127.0.0.1:`port` (a loaded machine takes seconds to import a
    server); its log's tail if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited: {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"{process.args!r} did not start listening on {port}")
