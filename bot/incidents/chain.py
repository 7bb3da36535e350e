"""The timeline's hash chain: how an event is hashed, where a chain ends, and appending a batch with Core.

The engine appends many events per run; it keeps the chain head in memory and writes each batch with one
INSERT, so an append costs no read. A stale head (someone else appended meanwhile) collides on the
(incident_id, seq) unique constraint; the caller then reads the head again and retries, so the chain
never forks.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, insert, select
from sqlalchemy.orm import Session

from bot.db.base import utcnow
from bot.incidents.models import TimelineEvent
from bot.secrets import redact_obj

GENESIS = "0" * 64
ACTOR_MAX = 120
EVENTS = cast(Table, TimelineEvent.__table__)


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


def event_hash(
    prev_hash: str,
    incident_id: int,
    seq: int,
    at: datetime,
    actor: str,
    kind: str,
    run_id: str | None,
    step: str | None,
    data: dict[str, Any],
) -> str:
    body = {
        "incident": incident_id,
        "seq": seq,
        "at": at.isoformat(),
        "actor": actor,
        "kind": kind,
        "run": run_id,
        "step": step,
        "data": data,
    }
    return hashlib.sha256(prev_hash.encode() + canonical(body)).hexdigest()


@dataclass(frozen=True)
class Head:
    """The last event of one incident's chain (seq 0 and GENESIS for an empty chain)."""

    seq: int
    hash: str


@dataclass(frozen=True)
class PendingEvent:
    """An event recorded at `at` but not yet written; its data is already redacted and JSON-normalised."""

    kind: str
    actor: str
    data: dict[str, Any]
    at: datetime
    run_id: str | None = None
    step: str | None = None

    @classmethod
    def now(
        cls,
        kind: str,
        actor: str,
        data: dict[str, Any] | None = None,
        *,
        run_id: str | None = None,
        step: str | None = None,
    ) -> PendingEvent:
        moment = utcnow()
        return cls(
            kind=kind,
            actor=actor[:ACTOR_MAX],
            data=json.loads(canonical(redact_obj(data or {}))),
            at=moment.replace(microsecond=moment.microsecond // 1000 * 1000),
            run_id=run_id,
            step=step,
        )


def head(db: Session | Connection, incident_id: int) -> Head:
    row = db.execute(
        select(TimelineEvent.seq, TimelineEvent.hash)
        .where(TimelineEvent.incident_id == incident_id)
        .order_by(TimelineEvent.seq.desc())
        .limit(1)
    ).first()
    return Head(row.seq, row.hash) if row else Head(0, GENESIS)


def chained_rows(
    incident_id: int, start: Head, events: list[PendingEvent]
) -> tuple[list[dict[str, Any]], Head]:
    """The rows for `events` linked after `start`, and the head they leave."""
    rows = []
    seq, prev = start.seq, start.hash
    for event in events:
        seq += 1
        digest = event_hash(
            prev, incident_id, seq, event.at, event.actor, event.kind, event.run_id, event.step, event.data
        )
        rows.append(
            {
                "incident_id": incident_id,
                "seq": seq,
                "at": event.at,
                "actor": event.actor,
                "kind": event.kind,
                "run_id": event.run_id,
                "step": event.step,
                "data": event.data,
                "prev_hash": prev,
                "hash": digest,
            }
        )
        prev = digest
    return rows, Head(seq, prev)


def write(db: Session | Connection, incident_id: int, start: Head, events: list[PendingEvent]) -> Head:
    """Insert `events` after `start` in one statement; raises IntegrityError when `start` is stale."""
    if not events:
        return start
    rows, end = chained_rows(incident_id, start, events)
    db.execute(insert(EVENTS), rows)
    return end
