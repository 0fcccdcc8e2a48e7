"""`handoff ledger enrol` and `handoff ledger devices`: which devices the ledger believes, under which keys."""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from handoff import compact_json
from handoff.audit.keys import load_public_keys
from handoff.audit.signature import fingerprint
from handoff.errors import UsageError
from handoff.ledger.config import LedgerConfig, load_ledger_config, resolve_ledger_config_path
from handoff.ledger.database import engine_for, writing
from handoff.ledger.enrolment import enrol, listing, recorder_for
from handoff.timefmt import rfc3339

DEVICE_ID = re.compile(r"[^/+#\s]{1,255}")
"""What can be one level of an MQTT topic, as a device id is."""


def register(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    enrolling = command("enrol", "believe DEVICE's messages signed by the key in FILE (re-enrolling replaces it)")
    enrolling.add_argument("device")
    enrolling.add_argument("--key", required=True, metavar="FILE", help="the appliance's audit.pub (PEM)")
    enrolling.add_argument(
        "--agent-key", action="append", default=[], metavar="FILE", help="an agent's public key PEM; repeatable"
    )
    enrolling.set_defaults(func=_enrol)
    shown = command("devices", "enrolled devices and pending ones (heard, not enrolled), with fingerprints")
    shown.add_argument("--format", choices=("text", "json"), default="text")
    shown.set_defaults(func=_devices)


def _config(args: argparse.Namespace) -> LedgerConfig:
    return load_ledger_config(resolve_ledger_config_path(getattr(args, "config", None)))


def _enrol(args: argparse.Namespace) -> int:
    if not DEVICE_ID.fullmatch(args.device):
        raise UsageError(f"device {args.device!r} cannot be a device id (1 to 255 characters, no / + # or space)")
    keys = load_public_keys(Path(args.key), "--key")
    if len(keys) != 1:
        raise UsageError(f"--key {args.key} holds {len(keys)} public keys; an appliance has one")
    agents = [key for path in args.agent_key for key in load_public_keys(Path(path), "--agent-key")]
    config = _config(args)
    engine = engine_for(config.ledger.database)
    recorder = recorder_for(config)
    with writing(engine) as conn:
        joined = enrol(conn, recorder, args.device, keys[0], agents, actor="cli", now=time.time())
    print(f"{args.device} enrolled: appliance key {fingerprint(keys[0])}, {len(agents)} agent key(s)")
    print(f"{joined} message(s) kept from before now joined the record")
    return 0


def _devices(args: argparse.Namespace) -> int:
    engine = engine_for(_config(args).ledger.database)
    with engine.connect() as conn:
        enrolled, pending = listing(conn)
    rows: list[dict[str, Any]] = [
        {
            "device_id": device.device_id,
            "enrolled": True,
            "fingerprint": device.fingerprint,
            "agent_fingerprints": device.agent_fingerprints,
            "enrolled_at": rfc3339(device.enrolled),
            "enrolled_by": device.enrolled_by,
        }
        for device in enrolled
    ] + [
        {"device_id": device.device_id, "enrolled": False, "fingerprint": device.fingerprint, "kept": device.kept}
        for device in pending
    ]
    if args.format == "json":
        print(compact_json.dumps(rows))
        return 0
    for row in rows:
        if row["enrolled"]:
            agents = ",".join(row["agent_fingerprints"]) or "-"
            print(f"{row['device_id']}\tenrolled\t{row['fingerprint']}\tagents {agents}\t{row['enrolled_at']}")
        else:
            print(f"{row['device_id']}\tpending\t{row['fingerprint'] or '-'}\t{row['kept']} kept")
    return 0
