"""The weekly DM to a team's manager: keys overdue past the threshold, and keys snoozed too often.

Deduped in the outbox on `escalation:<team>:<ISO week>` (the team's local week), so however often the
job runs, and on however many clocks, a manager hears once a week, after the team's first reminder slot.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db.session import Database
from bot.notifications.models import Notification
from bot.notifications.service import Message, insert_outbox_rows, outbox_rows
from bot.reminders.codec import escalation_json
from bot.reminders.due import due_keys, load_schedules
from bot.reminders.models import KeyEvent
from bot.reminders.schedule import TeamSchedule
from bot.reminders.settings import ReminderSettings, reminder_settings
from bot.reminders.types import DueKey, Escalation

KIND = "rotation_escalation"
SNOOZED_TOO_OFTEN = 2
"""More snoozes than this in a row (since the last rotation) puts a key on the manager's list."""


def iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def dedupe_key(team: str, week: str) -> str:
    return f"escalation:{team}:{week}"


def escalation_of(
    schedule: TeamSchedule, keys: list[DueKey], week: str, settings: ReminderSettings
) -> Escalation | None:
    """What the manager is told; None when nothing qualifies or the team has no manager."""
    if schedule.team is None or not schedule.manager:
        return None
    often = tuple(k for k in keys if k.snooze_count > SNOOZED_TOO_OFTEN)
    overdue = tuple(
        k
        for k in keys
        if k.days_overdue > settings.escalate_after_days and k.snooze_count <= SNOOZED_TOO_OFTEN
    )
    if not (often or overdue):
        return None
    return Escalation(schedule.team, schedule.manager, week, overdue, often)


def escalation_text(escalation: Escalation) -> tuple[str, str]:
    subject = f"Rotation escalation for {escalation.team}: keys overdue or snoozed repeatedly"
    lines = [f"Week {escalation.week}. Overdue by more than the threshold:"]
    for key in escalation.overdue:
        owners = " ".join(f"<@{o}>" for o in key.owners) or "no owner recorded"
        lines.append(f"• {key.name} ({key.environment}): overdue by {key.days_overdue} day(s) · {owners}")
    if escalation.snoozed_often:
        lines.append("Snoozed more than twice in a row:")
        for key in escalation.snoozed_often:
            owners = " ".join(f"<@{o}>" for o in key.owners) or "no owner recorded"
            lines.append(f"• {key.name}: snoozed {key.snooze_count} times · {owners}")
    return subject, "\n".join(lines)


def enqueue_escalation(session: Session, escalation: Escalation, now: datetime) -> bool:
    """Enqueue the DM and put it on each listed key's timeline; False when this week's was already sent."""
    subject, body = escalation_text(escalation)
    message = Message(KIND, escalation.manager, subject, body, {"escalation": escalation_json(escalation)})
    rows = outbox_rows([message], dedupe_prefix="escalation", incident_id=None, run_id=None)
    rows[0]["dedupe_key"] = dedupe_key(escalation.team, escalation.week)
    if not insert_outbox_rows(session, rows):
        return False
    session.execute(
        KeyEvent.__table__.insert(),  # type: ignore[attr-defined]
        [
            {
                "key_id": k.key_id,
                "at": now,
                "actor": "keybot",
                "kind": "escalated",
                "data": {
                    "manager": escalation.manager,
                    "week": escalation.week,
                    "days_overdue": k.days_overdue,
                },
            }
            for k in (*escalation.overdue, *escalation.snoozed_often)
        ],
    )
    return True


def run_escalations(database: Database, now: datetime, settings: ReminderSettings | None = None) -> list[str]:
    """Escalate every team whose week is due and not yet escalated; returns the dedupe keys enqueued."""
    settings = settings or reminder_settings()
    with database.session() as session:
        schedules = load_schedules(session, settings)
        weeks: dict[str, tuple[TeamSchedule, str]] = {}
        for schedule in schedules.values():
            latest = schedule.latest_slot(now)
            if schedule.team is None or not schedule.manager or latest is None:
                continue
            if iso_week(latest[0]) == iso_week(schedule.local_date(now)):
                weeks[schedule.team] = (schedule, iso_week(latest[0]))
        wanted = [dedupe_key(team, week) for team, (_s, week) in weeks.items()]
        done = set(
            session.scalars(select(Notification.dedupe_key).where(Notification.dedupe_key.in_(wanted)))
        )
    pending = {team: sw for team, sw in weeks.items() if dedupe_key(team, sw[1]) not in done}
    if not pending:
        return []
    by_team: dict[str | None, list[DueKey]] = defaultdict(list)
    for key in due_keys(database, now, horizon_days=settings.horizon_days, settings=settings):
        by_team[key.team].append(key)
    sent = []
    with database.session() as session:
        for team, (schedule, week) in sorted(pending.items()):
            escalation = escalation_of(schedule, by_team.get(team, []), week, settings)
            if escalation is not None and enqueue_escalation(session, escalation, now):
                sent.append(dedupe_key(team, week))
    return sent


def escalation_for(
    database: Database, team: str, now: datetime, settings: ReminderSettings | None = None
) -> Escalation | None:
    """This week's escalation for one team as it would be sent now (for previews)."""
    settings = settings or reminder_settings()
    with database.session() as session:
        schedule = load_schedules(session, settings).get(team)
    if schedule is None:
        return None
    keys = due_keys(database, now, team=team, horizon_days=settings.horizon_days, settings=settings)
    return escalation_of(schedule, keys, iso_week(schedule.local_date(now)), settings)
