"""Retention: per-minute rows older than `KEYBOT_USAGE_RETENTION_DAYS` become hourly rows.

Each slice is moved in one transaction: `DELETE ... RETURNING` takes the minute rows, and their sums are
added into `usage_hours`. A row can be deleted only once, so running twice, or on two clocks at the same
time, moves every minute exactly once (on PostgreSQL the second DELETE waits, then finds the rows gone).
A late minute row for an hour already rolled up is added to that hour on the next run.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select

from bot.db.session import Database
from bot.usage.models import COUNTERS, DISTINCTS, UsageHour, UsageMinute
from bot.usage.store import upsert_series
from bot.usage.types import floor_hour

SLICE = timedelta(days=1)
MAX_SLICES = 400


def roll_up(database: Database, now: datetime, retention_days: int) -> int:
    """Move minute rows before the retention boundary (an hour start) into hours; returns rows moved."""
    cutoff = floor_hour(now - timedelta(days=retention_days))
    moved = 0
    for _ in range(MAX_SLICES):
        with database.session() as session:
            oldest = session.scalar(select(func.min(UsageMinute.minute)).where(UsageMinute.minute < cutoff))
            if oldest is None:
                break
            upto = min(cutoff, floor_hour(oldest) + SLICE)
            taken = session.execute(
                delete(UsageMinute)
                .where(UsageMinute.minute < upto)
                .returning(
                    UsageMinute.key_id,
                    UsageMinute.minute,
                    UsageMinute.source,
                    *(UsageMinute.__table__.c[name] for name in COUNTERS + DISTINCTS),
                )
            ).all()
            hours: dict[tuple[int, datetime, str], dict[str, Any]] = defaultdict(dict)
            for key_id, minute, source, *numbers in taken:
                row = hours[(key_id, floor_hour(minute), source)]
                for name, value in zip(COUNTERS + DISTINCTS, numbers, strict=True):
                    if name in DISTINCTS:
                        row[name] = max(row.get(name, 0), value)
                    else:
                        row[name] = row.get(name, 0) + value
            rows = [
                {"key_id": key_id, "hour": hour, "source": source, **values}
                for (key_id, hour, source), values in hours.items()
            ]
            upsert_series(session, UsageHour, rows, add=True)
            moved += len(taken)
    return moved
