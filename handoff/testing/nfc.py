"""Waiting for an nfcpy reader on the UDP frontend to be polling, before a badge is presented.

A reader is ready when its polls arrive: the appliance says it is online once the broker has
its status, which can be before its readers are open, and a badge presented then may go unseen.
"""

from __future__ import annotations

import select
import socket


def wait_for_polling(device: str, timeout: float = 30.0) -> None:
    """Block until a reader sends a frame to `device` (`udp:HOST:PORT`), the port a badge listens on."""
    _, host, port = device.split(":")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, int(port)))
        if not select.select([sock], [], [], timeout)[0]:
            raise TimeoutError(f"no reader polled {device} within {timeout} s")
        sock.recvfrom(1024)
