"""The ledger's own commands in its database: queued with the exception that calls for them,
settled once the broker has them, answered by the appliance's `cmd_result`.

A command is queued in the very transaction that opens its exception, and only read for
sending after that transaction committed: the ledger never ends a session over an anomaly its
database does not hold. It stays unsent until the broker's PUBACK, so a broker outage or a
restart delays it and never loses it (responder.py publishes).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Final

import orjson
from sqlalchemy import Connection, insert, select, update

from handoff.ledger.anomalies import Target
from handoff.ledger.schema import devices, exceptions, responses
from handoff.timefmt import rfc3339

FORCE_LOGOFF: Final = "force_logoff"
DUE_AT_ONCE: Final = 100
SESSION_ENDED: Final = "not sent: the session had already ended"


@dataclass(frozen=True)
class Due:
    """A command to publish now: its id, where to, and the exception it answers."""

    id: str
    command: str
    site: str
    device_id: str
    exception_id: int


def queue(conn: Connection, exception_id: int, target: Target, now: float) -> str:
    """Queue a `force_logoff` of the target's session, say so on the exception; the command id."""
    command_id = str(uuid.uuid4())
    conn.execute(
        insert(responses).values(
            id=command_id,
            exception_id=exception_id,
            command=FORCE_LOGOFF,
            site=target.site,
            device_id=target.device_id,
            session_id=target.session_id,
            queued=now,
        )
    )
    _note(conn, exception_id, f"automated response: {FORCE_LOGOFF} {command_id} to {target.device_id} queued")
    return command_id


def due(conn: Connection) -> list[Due]:
    """The commands not yet acknowledged by the broker whose session is still the device's live
    one; those whose session has ended are settled as not sent (a late command would end
    whoever holds the device now)."""
    rows = conn.execute(
        select(responses, devices.c.state, devices.c.session_id.label("live_session"))
        .outerjoin(devices, devices.c.device_id == responses.c.device_id)
        .where(responses.c.sent.is_(None), responses.c.outcome.is_(None))
        .order_by(responses.c.queued)
        .limit(DUE_AT_ONCE)
    ).all()
    ready = []
    for row in rows:
        if row.state == "in_use" and row.live_session == row.session_id:
            ready.append(Due(row.id, row.command, row.site, row.device_id, row.exception_id))
            continue
        conn.execute(update(responses).where(responses.c.id == row.id).values(outcome=SESSION_ENDED))
        _note(conn, row.exception_id, f"{FORCE_LOGOFF} {row.id} to {row.device_id} {SESSION_ENDED}")
    return ready


def sent(conn: Connection, command: Due, now: float) -> None:
    """The broker has the command (PUBACK)."""
    conn.execute(update(responses).where(responses.c.id == command.id, responses.c.sent.is_(None)).values(sent=now))
    _note(conn, command.exception_id, f"{command.command} {command.id} sent to {command.device_id} at {rfc3339(now)}")


def refused(conn: Connection, command: Due, refusal: str) -> None:
    """The broker refused the command (its ACL does not let the ledger publish it)."""
    outcome = f"not sent: the broker refused it ({refusal})"
    conn.execute(update(responses).where(responses.c.id == command.id).values(outcome=outcome[:255]))
    _note(conn, command.exception_id, f"{command.command} {command.id} to {command.device_id} {outcome}")


def answered(conn: Connection, device_id: str, result: dict[str, Any], raw: str, now: float) -> None:
    """A trusted `cmd_result` from the device the command went to: the first answer is the
    appliance's verdict on the command (a second copy of the command is refused as a replay,
    which says nothing about the first)."""
    command_id = result.get("id")
    if not isinstance(command_id, str):
        return
    row = conn.execute(
        select(responses.c.exception_id).where(
            responses.c.id == command_id, responses.c.device_id == device_id, responses.c.result.is_(None)
        )
    ).first()
    if row is None:
        return
    conn.execute(update(responses).where(responses.c.id == command_id).values(result=raw, answered=now))
    _note(conn, row.exception_id, f"{device_id} answered {command_id}: {_answer(result)}")


@dataclass(frozen=True)
class Outcome:
    """One command as an exception's row shows it: where it went, how far it got, and the
    appliance's answer in a few words."""

    command: str
    device_id: str
    sent: float | None
    outcome: str | None
    answer: str | None


def of_exceptions(conn: Connection, exception_ids: list[int]) -> dict[int, list[Outcome]]:
    """The commands of a page of exceptions, in one query."""
    found: dict[int, list[Outcome]] = {}
    if not exception_ids:
        return found
    rows = conn.execute(
        select(responses).where(responses.c.exception_id.in_(exception_ids)).order_by(responses.c.queued)
    )
    for row in rows:
        answer = _answer(orjson.loads(row.result)) if row.result is not None else None
        found.setdefault(row.exception_id, []).append(
            Outcome(row.command, row.device_id, row.sent, row.outcome, answer)
        )
    return found


def _answer(result: dict[str, Any]) -> str:
    said = result.get("message")
    if result.get("ok") is True:
        return f"ok: {said}"
    return f"refused ({result.get('error')}): {said}"


def _note(conn: Connection, exception_id: int, line: str) -> None:
    """Append a line to the exception's detail, where every list of exceptions already shows it."""
    detail = conn.execute(select(exceptions.c.detail).where(exceptions.c.id == exception_id)).scalar_one()
    conn.execute(update(exceptions).where(exceptions.c.id == exception_id).values(detail=f"{detail}\n{line}"))
