"""`handoff ledger run` and `handoff ledger serve` as child processes, with their config."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from handoff.provision.render import render_toml
from handoff.testing.child import spawn_handoff, stop_child
from handoff.testing.cli import run_handoff
from handoff.testing.net import free_tcp_port, wait_listening


def ledger_config(
    root: Path, database: str, port: int, console: dict[str, Any] | None = None, name: str = "", **mqtt: Any
) -> Path:
    path = root / f"ledger-{name or mqtt.get('client_id', 'handoff-ledger')}.toml"
    tables: dict[str, Any] = {
        "ledger": {"database": database, "offline_after_s": 60},
        "mqtt": {"url": f"mqtt://127.0.0.1:{port}", "allow_insecure": True, **mqtt},
    }
    if console is not None:
        tables["console"] = console
    path.write_text(render_toml(tables, {}))
    return path


class Ledger:
    """`handoff ledger run` as a child process."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config, self.log = config, log
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = spawn_handoff("ledger", "run", "-c", self.config, stderr=out)
        self.starts += 1
        deadline = time.monotonic() + 60
        while self.log.read_text().count("connected to") < self.starts:
            if self.process.poll() is not None or time.monotonic() > deadline:
                stop_child(self.process)
                raise RuntimeError(f"handoff ledger run did not connect: {self.log.read_text()[-2000:]}")
            time.sleep(0.05)

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        assert self.process is not None
        stop_child(self.process, sig)
        self.process = None


def add_user(config: Path, name: str, role: str, password: str) -> None:
    result = run_handoff("ledger", "users", "add", name, "--role", role, "-c", config, input=password + "\n")
    if result.returncode != 0:
        raise RuntimeError(f"handoff ledger users add {name}: {result.stderr.strip()}")


class Console:
    """`handoff ledger serve` as a child process on a free loopback port: over TLS when the
    config names a certificate, else plain HTTP with `allow_insecure` (loopback only)."""

    def __init__(self, root: Path, database: str, broker_port: int, tls: tuple[Path, Path] | None = None) -> None:
        self.port = free_tcp_port()
        console: dict[str, Any] = {"listen": f"127.0.0.1:{self.port}"}
        if tls is None:
            console["allow_insecure"] = True
        else:
            console["cert_file"], console["key_file"] = str(tls[0]), str(tls[1])
        self.scheme = "https" if tls else "http"
        self.config = ledger_config(root, database, broker_port, console, name="console")
        self.log = root / "console.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def add_user(self, name: str, role: str, password: str) -> None:
        add_user(self.config, name, role, password)

    def __enter__(self) -> Console:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = spawn_handoff("ledger", "serve", "-c", self.config, stderr=out)
        try:
            wait_listening(self.process, self.port, self.log)
        except RuntimeError:
            stop_child(self.process)
            raise

    def stop(self) -> None:
        assert self.process is not None
        stop_child(self.process)
