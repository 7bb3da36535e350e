"""The reminders domain's clock jobs: each team's daily reminder, and the weekly escalation.

`rotation_reminders` runs every minute. For each team whose most recent local slot has passed and whose
day is not yet claimed, it enqueues the message (delivered by `deliver_notifications`). Only the most
recent slot is ever considered: a clock that was down sends that one late, with a note, never a backlog.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta

from sqlalchemy import select

from bot.db.base import utcnow
from bot.db.session import Database
from bot.reminders.delivery import build_reminder, claim_and_enqueue, late_note
from bot.reminders.due import due_keys, load_schedules
from bot.reminders.escalation import run_escalations
from bot.reminders.models import ReminderDay
from bot.reminders.schedule import TEAMLESS, TeamSchedule
from bot.reminders.settings import ReminderSettings, reminder_settings
from bot.reminders.types import DueKey
from bot.scheduling.jobs import ClockContext, job

LATE_AFTER = timedelta(minutes=10)
"""A reminder enqueued this long after its slot says it is late (the job itself runs every minute)."""
REMINDER_EVERY_SECONDS = 60.0
ESCALATION_EVERY_SECONDS = 3600.0


def _unclaimed(
    database: Database, now: datetime, settings: ReminderSettings
) -> list[tuple[TeamSchedule, date, datetime]]:
    with database.session() as session:
        schedules = load_schedules(session, settings)
        latest = {s.label: (s, *slot) for s in schedules.values() if (slot := s.latest_slot(now)) is not None}
        days = {d for _s, d, _at in latest.values()}
        rows = session.execute(
            select(ReminderDay.team, ReminderDay.local_date).where(ReminderDay.local_date.in_(days))
        )
        claimed = {(team, day) for team, day in rows}
    return [(s, d, at) for label, (s, d, at) in sorted(latest.items()) if (label, d) not in claimed]


def run_reminders(database: Database, now: datetime, settings: ReminderSettings | None = None) -> list[str]:
    """Enqueue every due team's reminder for its latest slot; returns `team:date` of the messages enqueued."""
    settings = settings or reminder_settings()
    pending = _unclaimed(database, now, settings)
    if not pending:
        return []
    by_team: dict[str | None, list[DueKey]] = defaultdict(list)
    for key in due_keys(database, now, horizon_days=settings.horizon_days, settings=settings):
        by_team[key.team].append(key)
    enqueued = []
    with database.session() as session:
        for schedule, day, slot in pending:
            note = late_note(schedule) if now - slot > LATE_AFTER else None
            reminder = build_reminder(schedule, by_team.get(schedule.team, []), day, settings, late=note)
            if claim_and_enqueue(session, schedule.team, day, reminder, late=note is not None):
                enqueued.append(
                    f"{schedule.team if schedule.team is not None else TEAMLESS}:{day.isoformat()}"
                )
    return enqueued


@job("rotation_reminders", every=REMINDER_EVERY_SECONDS)
def rotation_reminders(clock: ClockContext) -> list[str]:
    """Each team's reminder, once per local day, after its slot."""
    return run_reminders(clock.runtime.database, utcnow())


@job("rotation_escalations", every=ESCALATION_EVERY_SECONDS)
def rotation_escalations(clock: ClockContext) -> list[str]:
    """Each team's weekly escalation to its manager, once per ISO week."""
    return run_escalations(clock.runtime.database, utcnow())
