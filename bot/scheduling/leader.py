"""Leader election with a leased row: the holder renews it; if it stops, another clock takes over."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError

from bot.db.base import utcnow
from bot.db.session import Database
from bot.scheduling.models import LeaderLease


def acquire(database: Database, name: str, holder: str, ttl: timedelta) -> bool:
    """Take or renew the lease; True when `holder` leads until now + ttl."""
    now = utcnow()
    with database.session() as session:
        renewed = session.execute(
            update(LeaderLease)
            .where(LeaderLease.name == name)
            .where(or_(LeaderLease.holder == holder, LeaderLease.expires_at < now))
            .values(holder=holder, expires_at=now + ttl)
            .execution_options(synchronize_session=False)
        )
        if getattr(renewed, "rowcount", 0) == 1:
            return True
    try:
        with database.session() as session:
            session.add(LeaderLease(name=name, holder=holder, expires_at=now + ttl))
    except IntegrityError:
        return False
    return True


def release(database: Database, name: str, holder: str) -> None:
    with database.session() as session:
        session.execute(
            update(LeaderLease)
            .where(LeaderLease.name == name, LeaderLease.holder == holder)
            .values(expires_at=utcnow() - timedelta(seconds=1))
            .execution_options(synchronize_session=False)
        )
