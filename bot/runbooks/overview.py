"""One person's overview (the App Home tab, or any other surface): their keys, rotations due soon, their
unfinished runs and the open incidents on their keys. Data only; the surfaces render it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from bot.incidents.models import Incident, IncidentStatus
from bot.registry.models import Key, KeyOwner, KeyStatus
from bot.registry.render import rotation_state
from bot.registry.service import KeyFilter, list_keys
from bot.runbooks.models import Run, RunStatus

DUE_SOON_DAYS = 14
MAX_KEYS = 200
MAX_ROWS = 20


@dataclass(frozen=True)
class Overview:
    keys: list[Key]
    due: list[tuple[Key, str]]  # a key and its human due text
    runs: list[Run]
    incidents: list[Incident]


def overview(session: Session, user: str, now: datetime) -> Overview:
    """Rows stay attached to ``session``: render them before it closes."""
    mine = list_keys(session, KeyFilter(owner=user), limit=MAX_KEYS)
    due = [
        (key, rotation_state(key, now))
        for key in list_keys(session, KeyFilter(owner=user, due_within_days=DUE_SOON_DAYS))
    ]
    my_key_ids = select(KeyOwner.key_id).where(KeyOwner.slack_user_id == user)
    runs = session.scalars(
        select(Run)
        .where(or_(Run.initiated_by == user, Run.key_id.in_(my_key_ids)))
        .where(Run.status.not_in([RunStatus.SUCCEEDED, RunStatus.ABORTED]))
        .order_by(Run.created_at.desc())
        .limit(MAX_ROWS)
    ).all()
    incidents = session.scalars(
        select(Incident)
        .where(Incident.key_id.in_(my_key_ids))
        .where(Incident.status != IncidentStatus.RESOLVED)
        .order_by(Incident.opened_at.desc())
        .limit(MAX_ROWS)
    ).all()
    keys = [key for key in mine if key.status != KeyStatus.REVOKED]
    return Overview(keys, due, list(runs), list(incidents))
