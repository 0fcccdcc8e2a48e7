"""The handlers of `handoff ledger enrol` and `handoff ledger devices` (parsers in ledger.py): which
devices the ledger believes, under which keys."""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path
from typing import Any

from handoff import compact_json
from handoff.audit.keys import load_public_keys
from handoff.audit.signature import fingerprint
from handoff.cli.printable import printable
from handoff.errors import UsageError
from handoff.ledger import enrolment
from handoff.ledger.config import LedgerConfig, load_ledger_config, resolve_ledger_config_path
from handoff.ledger.database import engine_for, writing
from handoff.ledger.keys import audit_keys
from handoff.timefmt import rfc3339

DEVICE_ID = re.compile(r"[^/+#\s]{1,255}")
"""What can be one level of an MQTT topic, as a device id is."""


def _config(args: argparse.Namespace) -> LedgerConfig:
    return load_ledger_config(resolve_ledger_config_path(getattr(args, "config", None)))


def enrol(args: argparse.Namespace) -> int:
    if not DEVICE_ID.fullmatch(args.device):
        raise UsageError(f"device {args.device!r} cannot be a device id (1 to 255 characters, no / + # or space)")
    keys = load_public_keys(Path(args.key), "--key")
    if len(keys) != 1:
        raise UsageError(f"--key {args.key} holds {len(keys)} public keys; an appliance has one")
    agents = [key for path in args.agent_key for key in load_public_keys(Path(path), "--agent-key")]
    config = _config(args)
    engine = engine_for(config.ledger.database)
    recorder = enrolment.recorder_for(config, audit_keys(config))
    with writing(engine) as conn:
        joined = enrolment.enrol(conn, recorder, args.device, keys[0], agents, actor="cli", now=time.time())
    print(f"{args.device} enrolled: appliance key {fingerprint(keys[0])}, {len(agents)} agent key(s)")
    print(f"{joined} message(s) kept from before now joined the record")
    return 0


def devices(args: argparse.Namespace) -> int:
    engine = engine_for(_config(args).ledger.database)
    with engine.connect() as conn:
        enrolled, pending = enrolment.listing(conn)
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
        device = printable(row["device_id"])
        if row["enrolled"]:
            agents = ",".join(row["agent_fingerprints"]) or "-"
            print(f"{device}\tenrolled\t{row['fingerprint']}\tagents {agents}\t{row['enrolled_at']}")
        else:
            print(f"{device}\tpending\t{row['fingerprint'] or '-'}\t{row['kept']} kept")
    return 0
