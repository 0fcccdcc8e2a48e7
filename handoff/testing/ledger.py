"""`handoff ledger run` and `handoff ledger serve` as child processes, with their config."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Engine

from handoff.audit.keys import private_pem
from handoff.ledger.database import writing
from handoff.ledger.enrolment import enrol
from handoff.ledger.ingest import Recorder
from handoff.provision.render import render_toml
from handoff.sim.fleet import SimAppliance, simulated
from handoff.testing.child import spawn_handoff, stop_child
from handoff.testing.cli import run_handoff
from handoff.testing.net import free_tcp_port, wait_listening


def ledger_config(
    root: Path,
    database: str,
    port: int,
    console: dict[str, Any] | None = None,
    name: str = "",
    ledger: dict[str, Any] | None = None,
    oidc: dict[str, Any] | None = None,
    **mqtt: Any,
) -> Path:
    path = root / f"ledger-{name or mqtt.get('client_id', 'handoff-ledger')}.toml"
    tables: dict[str, Any] = {
        "ledger": {"database": database, "offline_after_s": 60, **(ledger or {})},
        "mqtt": {"url": f"mqtt://127.0.0.1:{port}", "allow_insecure": True, **mqtt},
    }
    if console is not None:
        tables["console"] = console
    if oidc is not None:
        tables["oidc"] = {key: value for key, value in oidc.items() if not isinstance(value, dict)}
        tables.update({f"oidc.{key}": value for key, value in oidc.items() if isinstance(value, dict)})
    path.write_text(render_toml(tables, {}))
    return path


class Ledger:
    """`handoff ledger run` as a child process."""

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

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

    def session_process(self) -> int:
        """The pid of the ledger's MQTT session process."""
        assert self.process is not None
        [pid] = spawned_children(self.process.pid)
        return pid


def spawned_children(pid: int) -> list[int]:
    """The live processes multiprocessing spawned from `pid`, from whichever of its threads (a
    zombie has no command line, and one reaped while this looks is passed over)."""
    tasks = Path(f"/proc/{pid}/task")
    children = [int(child) for task in tasks.iterdir() for child in (task / "children").read_text().split()]
    return [child for child in children if b"spawn_main" in _command_line(child)]


def _command_line(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return b""


def add_user(config: Path, name: str, role: str, password: str) -> None:
    result = run_handoff("ledger", "users", "add", name, "--role", role, "-c", config, input=password + "\n")
    if result.returncode != 0:
        raise RuntimeError(f"handoff ledger users add {name}: {result.stderr.strip()}")


class Console:
    """`handoff ledger serve` as a child process on a free loopback port: over TLS when the
    config names a certificate, else plain HTTP with `allow_insecure` (loopback only); `oidc` is
    its [oidc] table, for sign-in through an OpenID provider."""

    def __init__(
        self,
        root: Path,
        database: str,
        broker_port: int,
        tls: tuple[Path, Path] | None = None,
        oidc: dict[str, Any] | None = None,
    ) -> None:
        self.port = free_tcp_port()
        console: dict[str, Any] = {"listen": f"127.0.0.1:{self.port}"}
        if tls is None:
            console["allow_insecure"] = True
        else:
            console["cert_file"], console["key_file"] = str(tls[0]), str(tls[1])
        self.scheme = "https" if tls else "http"
        self.config = ledger_config(root, database, broker_port, console, name="console", oidc=oidc)
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


def sim_fleet(
    port: int, *, rate: int, events: int, appliances: int = 4, keys: Path | None = None
) -> subprocess.Popen[bytes]:
    """`handoff sim fleet` publishing `events` events (and as many retained states) in all; with
    `keys`, signed under the keys `enrolled_fleet` enrolled there. Its stderr is the caller's, so a
    failure shows where the caller's output goes."""
    signing = ("--keys", keys) if keys is not None else ()
    return spawn_handoff(
        *("sim", "fleet", "--appliances", str(appliances), "--rate", str(rate), "--events", str(events)),
        *("--mqtt", f"mqtt://127.0.0.1:{port}", *signing),
        stderr=None,
    )


def enrolled(engine: Engine, *appliances: SimAppliance, prefix: str = "handoff/v1") -> None:
    """Enrol simulated appliances' keys, as `handoff ledger enrol` does."""
    for appliance in appliances:
        enrol_key(engine, appliance.device_id, appliance.key.public_key(), prefix=prefix)


def enrol_key(engine: Engine, device_id: str, key: Ed25519PublicKey, prefix: str = "handoff/v1") -> None:
    with writing(engine) as conn:
        enrol(conn, Recorder(prefix), device_id, key, [], actor="test", now=time.time())


def audit_key(root: Path) -> tuple[Path, Ed25519PrivateKey]:
    """A new appliance signing key as `[audit] key_file` wants it: PKCS#8 PEM, mode 0600."""
    key = Ed25519PrivateKey.generate()
    path = root / "audit.key"
    path.write_bytes(private_pem(key))
    path.chmod(0o600)
    return path, key


def enrolled_fleet(engine: Engine, keys: Path, appliances: int, site: str = "sim-site") -> list[SimAppliance]:
    """The keys `handoff sim fleet --keys KEYS` will sign with, made and enrolled before it runs."""
    fleet = simulated(appliances, "handoff/v1", site, keys)
    enrolled(engine, *fleet)
    return fleet
