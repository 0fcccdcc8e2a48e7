"""Checking a trail: every link, every checkpoint's signature, and which `seq` is the first bad one.

Records come in any order, possibly twice (an export and a broker capture of the same events),
and a trail may hold a million events, so they are spilled into a temporary SQLite file as they
arrive, keeping 32 bytes of digest per event in the index and the line itself on disk, and then
walked in `seq` order per `source`. Memory stays flat however long the trail is.

What a failure is called, at the first `seq` it touches:
- `missing`: a `seq` absent between two present ones, past the last event up to a checkpoint, or
  before the first event when no checkpoint in the trail anchors it (an export whose oldest events
  were purged keeps the checkpoint just below them, which anchors it);
- `altered`: an event whose link does not follow from the one before, or one id seen with two contents;
- `reordered`: the link fails but the next event would fit here: two events changed places;
- `inserted`: two events claim one `seq` and only one of them links;
- `fork`: two events claim one `seq` and both link (a database restored from an old copy and run on);
- `bad_signature`: an event or a checkpoint no trusted key signed (an altered one is one of these,
  and so is an event without `data.signature`);
- `other_key`: given several keys, an event or checkpoint signed by another key than the rest of
  its source's trail: one appliance has one key, so a trail mixing two was put together;
- `no_checkpoint`: nothing in the trail is under a valid signature.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from handoff import compact_json
from handoff.audit.chain import NotCanonical, digest, genesis, link
from handoff.audit.checkpoint import CHECKPOINT_TYPE
from handoff.audit.signature import event_signer, signature_ok

EVENT_PREFIX: Final = "org.handoff."
UNCHAINED_TYPES: Final = frozenset({"org.handoff.logoff_receipt"})
"""Published next to events but made by the agent, which keeps no chain."""


class NotATrail(ValueError):
    """A record that is not an event, a checkpoint or an export line: the file is not a trail."""


@dataclass(frozen=True)
class Finding:
    source: str
    seq: int
    reason: str
    detail: str

    def describe(self) -> str:
        return f"broken at seq {self.seq} of {self.source}: {self.reason} ({self.detail})"


@dataclass
class Summary:
    events: int = 0
    checkpoints: int = 0
    unsigned: int = 0
    """Trailing events that link but no signed checkpoint covers yet."""
    sources: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Per source, the first and last `seq` seen."""

    def describe(self) -> str:
        spans = ", ".join(f"{source} seq {first}..{last}" for source, (first, last) in sorted(self.sources.items()))
        return (
            f"intact: {self.events} events ({spans}), {self.checkpoints} valid checkpoint(s); "
            f"{self.unsigned} trailing event(s) linked but not yet under a signed checkpoint"
        )


@dataclass(frozen=True)
class _Row:
    seq: int
    id: str
    digest: bytes
    chain: str
    raw: str


class TrailVerifier:
    """Feed records with `add`, then `finish` for the verdict; `close` drops the spill file."""

    def __init__(self, keys: Sequence[Ed25519PublicKey], spill_dir: Path | None = None) -> None:
        self._keys = list(keys)
        self._dir = tempfile.TemporaryDirectory(prefix="handoff-verify-", dir=spill_dir)
        self._db = sqlite3.connect(Path(self._dir.name) / "trail.db", isolation_level=None)
        self._db.executescript(
            """
            PRAGMA journal_mode = OFF;
            PRAGMA synchronous = OFF;
            CREATE TABLE events (source TEXT, seq INTEGER, id TEXT, digest BLOB, chain TEXT, raw TEXT,
                                 signer INTEGER, PRIMARY KEY (source, id));
            CREATE INDEX events_order ON events (source, seq, id);
            CREATE TABLE checkpoints (source TEXT, seq INTEGER, id TEXT, chain TEXT, valid INTEGER,
                                      signer INTEGER, PRIMARY KEY (source, id));
            BEGIN;
            """
        )
        self._early: list[Finding] = []

    def add(self, record: Mapping[str, Any]) -> None:
        """One JSON line: a CloudEvent, or an `handoff outbox export` line wrapping one."""
        event = record.get("event") if "event" in record and "specversion" not in record else record
        if not isinstance(event, Mapping) or not isinstance(event.get("type"), str):
            raise NotATrail("a line is neither a CloudEvent nor an export line")
        data = event.get("data")
        source = event.get("source")
        if not isinstance(data, Mapping) or not isinstance(source, str):
            raise NotATrail(f"a {event['type']} has no data or no source")
        if event["type"] == CHECKPOINT_TYPE:
            self._add_checkpoint(source, event, data)
        elif event["type"] in UNCHAINED_TYPES:
            return
        elif event["type"].startswith(EVENT_PREFIX):
            self._add_event(source, event, data)
        else:
            raise NotATrail(f"unknown type {event['type']!r}")

    def _add_event(self, source: str, event: Mapping[str, Any], data: Mapping[str, Any]) -> None:
        seq, event_id, chain = data.get("seq"), event.get("id"), data.get("chain")
        if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(event_id, str):
            raise NotATrail("an event without an integer data.seq or a string id")
        try:
            event_digest = digest(event)
        except NotCanonical as exc:
            self._early.append(Finding(source, seq, "altered", f"id {event_id} has no canonical JSON ({exc})"))
            return
        row = (source, seq, event_id, event_digest, chain if isinstance(chain, str) else "", compact_json.dumps(event))
        seen = self._db.execute("SELECT digest, seq FROM events WHERE source = ? AND id = ?", (source, event_id))
        before = seen.fetchone()
        if before is None:
            self._db.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", (*row, self._signer(event)))
        elif before[0] != row[3]:
            self._early.append(Finding(source, min(seq, before[1]), "altered", f"id {event_id} seen with two contents"))

    def _add_checkpoint(self, source: str, event: Mapping[str, Any], data: Mapping[str, Any]) -> None:
        seq, chain = data.get("seq"), data.get("chain")
        if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(chain, str):
            raise NotATrail("a checkpoint without an integer seq and a chain")
        signer = next((index for index, key in enumerate(self._keys) if signature_ok(data, [key])), None)
        valid = data.get("source") == source and signer is not None
        self._db.execute(
            "INSERT OR IGNORE INTO checkpoints VALUES (?, ?, ?, ?, ?, ?)",
            (source, seq, str(event.get("id", "")), chain, int(valid), signer),
        )

    def _signer(self, event: Mapping[str, Any]) -> int | None:
        """Which of the keys (by position) signed the event, or None."""
        key = event_signer(event, self._keys)
        return None if key is None else self._keys.index(key)

    def finish(self) -> Summary | Finding:
        self._db.execute("COMMIT")
        findings = list(self._early)
        summary = Summary()
        sources = [row[0] for row in self._db.execute("SELECT DISTINCT source FROM events ORDER BY source")]
        for source in sources:
            finding = self._walk(source, summary)
            if finding is not None:
                findings.append(finding)
            findings.extend(self._signatures(source))
        for source, seq in self._db.execute("SELECT source, seq FROM checkpoints WHERE valid = 0 ORDER BY source, seq"):
            findings.append(Finding(source, seq, "bad_signature", "no trusted key signed this checkpoint"))
        if findings:
            return min(findings, key=lambda f: (f.source, f.seq))
        if summary.checkpoints == 0:
            first = sources[0] if sources else "-"
            return Finding(first, summary.sources.get(first, (0, 0))[0], "no_checkpoint", "no valid checkpoint")
        return summary

    def _walk(self, source: str, summary: Summary) -> Finding | None:
        checkpoints = {
            seq: chain
            for seq, chain in self._db.execute(
                "SELECT seq, chain FROM checkpoints WHERE source = ? AND valid = 1", (source,)
            )
        }
        previous = genesis(source)
        expected: int | None = None
        signed_upto = 0
        last = 0
        groups = self._by_seq(source)
        pending = next(groups, None)
        while pending is not None:
            seq, rows = pending
            pending = next(groups, None)
            if expected is None:
                if seq > 1 and seq - 1 not in checkpoints:
                    return Finding(source, 1, "missing", f"the trail starts at seq {seq} with no checkpoint before it")
                previous = genesis(source) if seq == 1 else checkpoints[seq - 1]
                summary.sources[source] = (seq, seq)
            elif seq > expected:
                return Finding(source, expected, "missing", f"no event with seq {expected}")
            linked = [row for row in rows if link(previous, row.digest) == row.chain]
            if len(rows) > 1:
                reason = "fork" if len(linked) > 1 else "inserted" if linked else "altered"
                return Finding(source, seq, reason, f"{len(rows)} events claim seq {seq}")
            if not linked:
                nxt = pending[1][0] if pending is not None and pending[0] == seq + 1 else None
                if nxt is not None and self._fits(nxt, seq, previous):
                    return Finding(source, seq, "reordered", f"the event numbered {seq + 1} belongs at {seq}")
                return Finding(source, seq, "altered", "its link does not follow from the event before")
            previous, expected, last = rows[0].chain, seq + 1, seq
            summary.events += 1
            summary.sources[source] = (summary.sources[source][0], seq)
            if seq in checkpoints:
                if checkpoints[seq] != previous:
                    return Finding(source, seq, "altered", "the chain differs from the signed checkpoint's")
                summary.checkpoints += 1
                signed_upto = seq
        beyond = [seq for seq in checkpoints if seq > last]
        if beyond:
            return Finding(source, last + 1, "missing", f"a signed checkpoint covers seq {max(beyond)}")
        summary.unsigned += last - signed_upto
        return None

    def _signatures(self, source: str) -> list[Finding]:
        """After the walk, so that at one `seq` a broken link is named before the signature it breaks.

        The trail's key is the one that signed its earliest signed record; the first record
        signed by another is named, as is the first event no trusted key signed."""
        findings: list[Finding] = []
        unsigned = self._db.execute(
            "SELECT min(seq) FROM events WHERE source = ? AND signer IS NULL", (source,)
        ).fetchone()[0]
        if unsigned is not None:
            findings.append(Finding(source, unsigned, "bad_signature", "no trusted key signed this event"))
        signed = self._db.execute(
            "SELECT seq, signer FROM events WHERE source = ? AND signer IS NOT NULL"
            " UNION ALL SELECT seq, signer FROM checkpoints WHERE source = ? AND valid = 1 ORDER BY seq",
            (source, source),
        ).fetchall()
        if signed:
            trail_key = signed[0][1]
            other = next((seq for seq, signer in signed if signer != trail_key), None)
            if other is not None:
                detail = f"signed by another key than seq {signed[0][0]}: one appliance signs with one key"
                findings.append(Finding(source, other, "other_key", detail))
        return findings

    def _by_seq(self, source: str) -> Iterator[tuple[int, list[_Row]]]:
        cursor = self._db.execute(
            "SELECT seq, id, digest, chain, raw FROM events WHERE source = ? ORDER BY seq, id", (source,)
        )
        group: list[_Row] = []
        for seq, event_id, event_digest, chain, raw in cursor:
            if group and group[0].seq != seq:
                yield group[0].seq, group
                group = []
            group.append(_Row(seq, event_id, event_digest, chain, raw))
        if group:
            yield group[0].seq, group

    @staticmethod
    def _fits(row: _Row, seq: int, previous: str) -> bool:
        """Would this event link here if it carried `seq`? Then it was moved, not made up."""
        event = json.loads(row.raw)
        event["data"]["seq"] = seq
        return link(previous, digest(event)) == row.chain

    def close(self) -> None:
        self._db.close()
        self._dir.cleanup()


def verify_lines(lines: Iterator[str], keys: Sequence[Ed25519PublicKey]) -> Summary | Finding:
    """Raises NotATrail (with the line number) for a line that is not JSON or not a trail record."""
    verifier = TrailVerifier(keys)
    try:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                raise NotATrail(f"line {number} is not JSON") from None
            if not isinstance(record, dict):
                raise NotATrail(f"line {number} is not a JSON object")
            try:
                verifier.add(record)
            except NotATrail as exc:
                raise NotATrail(f"line {number}: {exc}") from None
        return verifier.finish()
    finally:
        verifier.close()
