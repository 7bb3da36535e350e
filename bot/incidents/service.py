"""Opening incidents, appending to the timeline, and proving nobody rewrote it.

Each event's hash covers its content and the previous event's hash, per incident. Concurrent appends to
one incident collide on (incident_id, seq) and are retried, so the chain never forks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Table, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.incidents import chain
from bot.incidents.chain import GENESIS, PendingEvent, event_hash
from bot.incidents.models import DRILL_NUMBERS, Incident, TimelineEvent, reference_for

APPEND_ATTEMPTS = 5
INCIDENTS: Table = Incident.__table__  # type: ignore[assignment]


def next_incident_id(dialect: str, *, drill: bool) -> ColumnElement[int] | None:
    """The id a new incident takes, or None for the database's own (PostgreSQL's serial sequence).

    Drills count down from -1 (`DRILL-n`), never taking a real incident's number; on PostgreSQL from
    their own sequence. On SQLite a real incident takes the next positive id explicitly, because SQLite's
    own choice (largest id + 1) would be 0 while only drills exist.
    """
    ids = INCIDENTS.c.id
    if drill and dialect == "postgresql":
        return -func.nextval(DRILL_NUMBERS)
    if drill:
        return select(func.coalesce(func.min(ids), 0) - 1).where(ids < 0).scalar_subquery()
    if dialect == "postgresql":
        return None
    return select(func.coalesce(func.max(ids), 0) + 1).where(ids > 0).scalar_subquery()


def open_incident(
    session: Session,
    *,
    key_id: int | None,
    title: str,
    opened_by: str,
    reason: str,
    severity: str = "sev2",
    drill: bool = False,
) -> Incident:
    """A new incident and its first timeline event; a drill's is `DRILL-n` (see next_incident_id)."""
    chosen = next_incident_id(session.get_bind().dialect.name, drill=drill)
    incident = Incident(
        key_id=key_id, title=title[:300], opened_by=opened_by, reason=reason, severity=severity, drill=drill
    )
    if chosen is not None:
        incident.id = session.execute(select(chosen)).scalar_one()
    session.add(incident)
    session.flush()
    append_event(session, incident.id, "incident.opened", opened_by, {"title": title, "reason": reason})
    return incident


def append_event(
    session: Session,
    incident_id: int,
    kind: str,
    actor: str,
    data: dict[str, Any] | None = None,
    *,
    run_id: str | None = None,
    step: str | None = None,
) -> None:
    """Append one redacted event; data is normalised through JSON so the stored form is what was hashed."""
    event = PendingEvent.now(kind, actor, data, run_id=run_id, step=step)
    for attempt in range(APPEND_ATTEMPTS):
        try:
            with session.begin_nested():
                chain.write(session, incident_id, chain.head(session, incident_id), [event])
            return
        except IntegrityError:
            if attempt == APPEND_ATTEMPTS - 1:
                raise


def timeline(session: Session, incident_id: int) -> list[TimelineEvent]:
    return list(
        session.scalars(
            select(TimelineEvent).where(TimelineEvent.incident_id == incident_id).order_by(TimelineEvent.seq)
        )
    )


@dataclass(frozen=True)
class ChainBreak:
    incident_id: int
    seq: int
    reason: str

    def __str__(self) -> str:
        return f"{reference_for(self.incident_id)} event #{self.seq}: {self.reason}"


def verify_chain(session: Session, incident_id: int | None = None) -> tuple[int, list[ChainBreak]]:
    """Recompute every hash; returns the number of events checked and where each chain breaks."""
    statement = select(TimelineEvent).order_by(TimelineEvent.incident_id, TimelineEvent.seq)
    if incident_id is not None:
        statement = statement.where(TimelineEvent.incident_id == incident_id)
    breaks: list[ChainBreak] = []
    checked = 0
    current, prev, expected_seq, broken = None, GENESIS, 1, False
    for event in session.execute(statement.execution_options(yield_per=1000)).scalars():
        checked += 1
        if event.incident_id != current:
            current, prev, expected_seq, broken = event.incident_id, GENESIS, 1, False
        if broken:
            continue
        reason = None
        if event.seq != expected_seq:
            reason = f"expected event #{expected_seq} here (an event is missing or was inserted)"
        elif event.prev_hash != prev:
            reason = "does not link to the previous event (an earlier event was changed or removed)"
        elif event.hash != event_hash(
            prev,
            event.incident_id,
            event.seq,
            event.at,
            event.actor,
            event.kind,
            event.run_id,
            event.step,
            event.data,
        ):
            reason = "content does not match its hash (this event was modified)"
        if reason:
            breaks.append(ChainBreak(event.incident_id, event.seq, reason))
            broken = True
            continue
        prev, expected_seq = event.hash, expected_seq + 1
    return checked, breaks
