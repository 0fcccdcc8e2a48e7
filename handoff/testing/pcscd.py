"""A real pcscd with the vsmartcard-vpcd driver, started by the tests when none is running."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from smartcard import scard

PCSCD = shutil.which("pcscd") or "/usr/sbin/pcscd"
SOCKET = Path("/run/pcscd/pcscd.comm")
PIDFILE = Path("/run/pcscd/pcscd.pid")
VPCD_PORT = 35963


def _answers() -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(SOCKET))
        with socket.create_connection(("127.0.0.1", VPCD_PORT), timeout=0.2):
            return True
    except OSError:
        return False


def ensure_running() -> None:
    if _answers():
        return
    subprocess.Popen([PCSCD, "--foreground"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not _answers():
        if time.monotonic() > deadline:
            raise RuntimeError("pcscd with vpcd did not come up: is vsmartcard-vpcd installed (make setup)?")
        time.sleep(0.05)


def wait_until_empty(reader: str = "Virtual PCD 00 00", timeout_s: float = 5.0) -> None:
    """Until pcscd has seen the virtual card leave its slot.

    vpcd learns that a card went (its socket closed) only when pcscd next polls the slot, about
    every 0.4 s; a card put back before that poll is taken for the same card still sitting
    there, and no reader is told of it. A hand takes longer than that to swap cards, so a test
    that inserts twice waits for the slot to be seen empty, as a hand would.
    """
    _, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    try:
        state = scard.SCARD_STATE_UNAWARE
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            wait_ms = max(1, int((deadline - time.monotonic()) * 1000))
            result, changed = scard.SCardGetStatusChange(context, wait_ms, [(reader, state)])
            if result != scard.SCARD_S_SUCCESS:
                break
            state = changed[0][1] & ~scard.SCARD_STATE_CHANGED
            if state & scard.SCARD_STATE_EMPTY:
                return
        raise RuntimeError(f"pcscd still saw a card in {reader!r} after {timeout_s} s")
    finally:
        scard.SCardReleaseContext(context)


def restart() -> None:
    """Stops pcscd (as a crash or an upgrade would) and starts it again."""
    if PIDFILE.exists():
        pid = int(PIDFILE.read_text().strip("\x00 \n"))
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    time.sleep(0.5)
    ensure_running()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
