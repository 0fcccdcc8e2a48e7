"""`handoff agent [-c FILE]` and `handoff agent keygen --out FILE` (docs/agent.md)."""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path
from types import FrameType

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from handoff.agent.config import load_agent_config, resolve_agent_config_path
from handoff.audit.keys import load_public_keys, load_signing_key, private_pem, public_pem
from handoff.errors import UsageError
from handoff.instance_lock import hold_instance_lock
from handoff.logs import configure_logging


def register(agent: argparse.ArgumentParser) -> None:
    agent.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        help="agent config (default: $HANDOFF_AGENT_CONFIG, then /etc/handoff/agent.toml)",
    )
    agent.set_defaults(func=_run)
    actions = agent.add_subparsers(dest="action", metavar="ACTION", parser_class=type(agent))
    keygen = actions.add_parser("keygen", help="make the agent's Ed25519 key (0600) and print its public key")
    keygen.add_argument("--out", type=Path, required=True, metavar="FILE")
    keygen.set_defaults(func=_keygen)


def _keygen(args: argparse.Namespace) -> int:
    key = Ed25519PrivateKey.generate()
    try:
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UsageError(f"{args.out} exists: an agent's key is never overwritten; remove it first") from None
    except OSError as exc:
        raise UsageError(f"{args.out}: cannot be written: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as out:
        out.write(private_pem(key))
    print(public_pem(key).decode("ascii"), end="")
    return 0


def _run(args: argparse.Namespace) -> int:
    from handoff.agent.service import AgentService, StopAgent

    config = load_agent_config(resolve_agent_config_path(args.config))
    key = load_signing_key(config.agent.key_file, "agent.key_file")
    appliance_keys = load_public_keys(config.agent.appliance_key, "agent.appliance_key")
    configure_logging()
    lock = hold_instance_lock(config.agent.data_dir, "handoff agent", "agent.data_dir")
    service = AgentService(config, key, appliance_keys)

    def stop(signum: int, _frame: FrameType | None) -> None:
        service.submit(StopAgent(f"{signal.Signals(signum).name} received"))

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with lock:
        service.run()
    return 0
