"""Regenerate an incident's postmortem draft: allowed to the incident's people, checked for every surface.

The incident's people are its starter, whoever approved a step of a run on it, the key's owners and
backups, the revokers and the admins (`Decision.REGENERATE_POSTMORTEM`). A refusal names who may, and
nothing is drawn, saved or sent.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.access.policy import Actor, Decision, Policy, Subject
from bot.db.session import Database
from bot.incidents.models import Incident, TimelineEvent, reference_for
from bot.registry.models import Key, OwnerRole
from bot.runbooks.models import Run, RunStep
from bot.runbooks.refusals import RunRefused

if TYPE_CHECKING:
    from bot.postmortems.service import Draft


def incident_subject(session: Session, incident: Incident) -> Subject:
    """The policy's view of an incident: its key's owners and backups, its starter, its approvers."""
    key = session.get(Key, incident.key_id) if incident.key_id is not None else None
    approvers = session.scalars(
        select(RunStep.approved_by)
        .join(Run, Run.id == RunStep.run_id)
        .where(Run.incident_id == incident.id, RunStep.approved_by.is_not(None))
        .distinct()
    ).all()
    approved = session.scalars(
        select(TimelineEvent.actor)
        .where(TimelineEvent.incident_id == incident.id, TimelineEvent.kind == "step.approved")
        .distinct()
    ).all()
    return Subject(
        key.name if key is not None else incident.title[:80],
        key.environment if key is not None else "unknown",
        tuple(key.owner_ids(OwnerRole.OWNER)) if key is not None else (),
        tuple(key.owner_ids(OwnerRole.BACKUP)) if key is not None else (),
        starter=incident.opened_by,
        approvers=tuple(sorted({a for a in [*approvers, *approved] if a})),
    )


def check_regenerate(database: Database, incident_id: int, actor: Actor | str, *, policy: Policy) -> bool:
    """Whether `actor` may regenerate the draft (raises `NotAllowed` naming who may); returns the
    incident's drill flag."""
    who = actor if isinstance(actor, Actor) else Actor(actor)
    with database.session() as session:
        incident = session.get(Incident, incident_id)
        if incident is None:
            raise RunRefused(f"no incident {reference_for(incident_id)}")
        policy.check(Decision.REGENERATE_POSTMORTEM, who, incident_subject(session, incident))
        return bool(incident.drill)


def regenerate(
    database: Database, incident_id: int, actor: Actor | str, *, policy: Policy, now: datetime | None = None
) -> Draft:
    """The draft redrawn from the timeline as it is now (LLM per settings), saved; refused to strangers."""
    check_regenerate(database, incident_id, actor, policy=policy)
    from bot.postmortems.service import draft_postmortem

    return draft_postmortem(database, incident_id, llm=None, now=now)
