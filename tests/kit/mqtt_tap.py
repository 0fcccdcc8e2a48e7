"""A loopback relay between a client and a real broker that reads the MQTT packets passing through.

It sees what the broker sees: QoS 1 PUBLISH packets arriving and PUBACKs going back. The
count of those not yet acknowledged is what a broker's Receive Maximum limits, which nothing
on either end reports.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

from tests.kit.net import free_tcp_port

PUBLISH = 3
PUBACK = 4


class MqttTap:
    def __init__(self, broker_port: int) -> None:
        self.port = free_tcp_port()
        self._broker_port = broker_port
        self._lock = threading.Lock()
        self._unacked = 0
        self.max_unacked = 0
        self.published = 0
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._closed = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            broker = socket.create_connection(("127.0.0.1", self._broker_port))
            with self._lock:
                self._unacked = 0  # a new connection starts a new flow-control window
            threading.Thread(target=self._relay, args=(client, broker, self._to_broker), daemon=True).start()
            threading.Thread(target=self._relay, args=(broker, client, self._to_client), daemon=True).start()

    def _to_broker(self, first_byte: int) -> None:
        if first_byte >> 4 == PUBLISH and (first_byte >> 1) & 3 == 1:
            with self._lock:
                self.published += 1
                self._unacked += 1
                self.max_unacked = max(self.max_unacked, self._unacked)

    def _to_client(self, first_byte: int) -> None:
        if first_byte >> 4 == PUBACK:
            with self._lock:
                self._unacked -= 1

    @staticmethod
    def _relay(source: socket.socket, sink: socket.socket, seen: Callable[[int], None]) -> None:
        """Forward packet by packet, so a packet is counted before the other side can answer it."""
        buffer = b""
        try:
            while chunk := source.recv(65536):
                buffer += chunk
                while (length := _packet_length(buffer)) is not None and len(buffer) >= length:
                    seen(buffer[0])
                    sink.sendall(buffer[:length])
                    buffer = buffer[length:]
        except OSError:
            pass
        finally:
            source.close()
            sink.close()


def _packet_length(buffer: bytes) -> int | None:
    """Fixed header plus remaining length, or None while the length itself is incomplete."""
    remaining, multiplier = 0, 1
    for index in range(1, min(len(buffer), 5)):
        remaining += (buffer[index] & 0x7F) * multiplier
        if not buffer[index] & 0x80:
            return index + 1 + remaining
        multiplier *= 128
    return None
