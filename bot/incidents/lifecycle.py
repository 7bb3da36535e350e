"""An incident's end: resolved by a person, or called a false alarm (which restores the key's status).

Both are decisions of the authorization policy, checked here; both need a reason, which is redacted before
it is stored; both refuse while a run on the incident is still in flight (abort it first).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.access.policy import Actor, Decision, Policy, Subject
from bot.db.base import utcnow
from bot.db.session import Database
from bot.incidents.models import Incident, IncidentStatus, TimelineEvent, reference_for
from bot.incidents.service import append_event
from bot.postmortems.outbox import enqueue_draft
from bot.registry.models import Key, KeyStatus, OwnerRole
from bot.runbooks.decisions import clean, lock_row
from bot.runbooks.models import Run
from bot.runbooks.refusals import RunRefused


@dataclass(frozen=True)
class Closed:
    incident_id: int
    message: str


def parse_reference(text: str) -> int:
    """`INC-00042`, `inc-42` or `42` → 42, `DRILL-00003` → -3 (drills count down); else refused."""
    upper = text.strip().upper()
    sign = -1 if upper.startswith("DRILL-") else 1
    value = upper.removeprefix("DRILL-").removeprefix("INC-").lstrip("0") or "0"
    if not value.isdigit() or len(value) > 9 or int(value) == 0:
        raise RunRefused(f"expected an incident like INC-00042 or 42, got {text[:40]!r}")
    return sign * int(value)


def _load(session: Session, incident_id: int) -> tuple[Incident, Key | None]:
    lock_row(session, Incident, incident_id)
    incident = session.get(Incident, incident_id, with_for_update=True)
    if incident is None:
        raise RunRefused(f"no incident {reference_for(incident_id)}")
    key = session.get(Key, incident.key_id) if incident.key_id is not None else None
    return incident, key


def _subject(incident: Incident, key: Key | None) -> Subject:
    if key is None:
        return Subject(incident.title, "unknown")
    return Subject(
        key.name,
        key.environment,
        tuple(key.owner_ids(OwnerRole.OWNER)),
        tuple(key.owner_ids(OwnerRole.BACKUP)),
    )


def _no_run_in_flight(session: Session, incident: Incident) -> None:
    runs = session.scalars(select(Run).where(Run.incident_id == incident.id)).all()
    active = [r for r in runs if not r.status.finished]
    if active:
        run = active[0]
        raise RunRefused(
            f"run {run.id} on {incident.reference} is still {run.status.value.replace('_', ' ')}; "
            f"abort it first (`keybot runs abort {run.id} --reason ...` or its Abort button)"
        )


def _other_open_incident(session: Session, incident: Incident) -> Incident | None:
    """Another incident on the same key that is still open: the key is still compromised because of it."""
    return session.scalars(
        select(Incident)
        .where(
            Incident.key_id == incident.key_id,
            Incident.id != incident.id,
            Incident.status.in_([IncidentStatus.OPEN, IncidentStatus.CONTAINED]),
        )
        .order_by(Incident.id)
        .limit(1)
    ).first()


def _status_before(session: Session, incident_id: int) -> KeyStatus | None:
    opened = session.scalars(
        select(TimelineEvent)
        .where(TimelineEvent.incident_id == incident_id, TimelineEvent.kind == "incident.opened")
        .order_by(TimelineEvent.seq)
        .limit(1)
    ).first()
    value = (opened.data or {}).get("key_status_before") if opened is not None else None
    try:
        return KeyStatus(value) if value else None
    except ValueError:
        return None


def close(
    database: Database,
    incident_id: int,
    actor: Actor | str,
    reason: str,
    *,
    policy: Policy,
    false_alarm: bool = False,
) -> Closed:
    """Resolve the incident, or call it a false alarm and restore the key's status from before it."""
    who = actor if isinstance(actor, Actor) else Actor(actor)
    reason = clean(reason)
    if not reason:
        raise RunRefused("a reason is required (it goes on the incident timeline)")
    decision = Decision.FALSE_ALARM if false_alarm else Decision.RESOLVE
    with database.session() as session:
        incident, key = _load(session, incident_id)
        if incident.status.closed:
            raise RunRefused(f"{incident.reference} is already {incident.status.value.replace('_', ' ')}")
        policy.check(decision, who, _subject(incident, key))
        _no_run_in_flight(session, incident)
        incident.status = IncidentStatus.FALSE_ALARM if false_alarm else IncidentStatus.RESOLVED
        incident.resolved_at = utcnow()
        data: dict[str, object] = {"reason": reason}
        if who.break_glass:
            data["break_glass"] = who.break_glass
        if false_alarm and key is not None:
            before = _status_before(session, incident.id) or KeyStatus.ACTIVE
            other = _other_open_incident(session, incident)
            if other is not None:  # the key is still compromised because of that one
                data["key_status_kept"] = {"status": key.status.value, "open": other.reference}
            elif key.status in (KeyStatus.COMPROMISED, KeyStatus.ROTATING):
                data["key_status_restored"] = {"from": key.status.value, "to": before.value}
                key.status = before
        kind = "incident.false_alarm" if false_alarm else "incident.resolved"
        append_event(session, incident.id, kind, who.id, data)
        enqueue_draft(session, incident.id, drill=incident.drill, starter=incident.opened_by)
        reference = incident.reference
    restored, kept = data.get("key_status_restored"), data.get("key_status_kept")
    tail = f"; the key's status is {restored['to']} again" if isinstance(restored, dict) else ""
    if isinstance(kept, dict):
        tail = f"; the key stays {kept['status']}: {kept['open']} on it is still open"
    verb = "called a false alarm" if false_alarm else "resolved"
    return Closed(incident_id, f"{reference} {verb}{tail}.")
