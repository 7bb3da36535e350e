"""Handled-once bookkeeping for Slack's retries, shared by every replica through the database."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from bot.db.base import utcnow
from bot.db.session import Database
from bot.slack.models import SlackEvent

KEEP = timedelta(days=2)


def first_time(database: Database, event_id: str) -> bool:
    """True exactly once per id across all processes."""
    try:
        with database.session() as session:
            session.add(SlackEvent(id=event_id[:200]))
    except IntegrityError:
        return False
    return True


def forget_old(database: Database) -> int:
    with database.session() as session:
        result = session.execute(delete(SlackEvent).where(SlackEvent.received_at < utcnow() - KEEP))
        return int(getattr(result, "rowcount", 0) or 0)
