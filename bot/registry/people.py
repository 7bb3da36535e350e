"""Everyone the registry names (owners, backups, consumer contacts, team managers), e.g. the people the
shell chat lets you act as."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.registry.models import Consumer, KeyOwner, Team


def known_people(session: Session) -> set[str]:
    """Slack user ids the registry names anywhere."""
    people = set(session.scalars(select(KeyOwner.slack_user_id)))
    people |= {c for c in session.scalars(select(Consumer.contact)) if c}
    people |= {m for m in session.scalars(select(Team.manager_slack_id)) if m}
    return people
