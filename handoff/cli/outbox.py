"""`handoff outbox list|export`: the local audit trail of events, sent and unsent, for biomed."""

from __future__ import annotations

import argparse
import json
import sys

from handoff import compact_json
from handoff.audit.checkpoint import checkpoint_policy
from handoff.cli.common import add_config_option, config_from, open_database
from handoff.store import Store
from handoff.timefmt import rfc3339


def register(outbox: argparse.ArgumentParser) -> None:
    actions = outbox.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=type(outbox))
    lister = actions.add_parser("list", help="one line per event: seq, type, made, sent")
    lister.add_argument("--unsent", action="store_true", help="only events the broker has not acknowledged")
    add_config_option(lister)
    lister.set_defaults(func=_list)
    exporter = actions.add_parser("export", help="JSON lines: every held event with its CloudEvents payload")
    add_config_option(exporter)
    exporter.set_defaults(func=_export)


def _list(args: argparse.Namespace) -> int:
    store = Store(open_database(config_from(args)))
    print("SEQ\tTOPIC\tMADE\tACKED\tID")
    for event, acked in store.all_events():
        if args.unsent and acked is not None:
            continue
        sent = rfc3339(acked) if acked is not None else "unsent"
        print(f"{event.seq}\t{event.topic}\t{rfc3339(event.created)}\t{sent}\t{event.id}")
    return 0


def _export(args: argparse.Namespace) -> int:
    """Events first, then the checkpoints that sign them: `handoff audit verify` reads both.
    Events are signed as they are published, so the export signs them too, with the same key."""
    config = config_from(args)
    store = Store(open_database(config), checkpoints=checkpoint_policy(config.audit))
    for event, acked in store.all_events():
        _write_line(event.seq, event.topic, event.created, acked, store.outgoing(event))
    for seq, payload, created, acked in store.all_checkpoints():
        _write_line(seq, "checkpoint", created, acked, payload)
    return 0


def _write_line(seq: int, topic: str, created: float, acked: float | None, payload: bytes) -> None:
    line = {
        "seq": seq,
        "topic": topic,
        "created": rfc3339(created),
        "acked": rfc3339(acked) if acked is not None else None,
        "event": json.loads(payload),
    }
    sys.stdout.write(compact_json.dumps(line) + "\n")
