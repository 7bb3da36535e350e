"""A team's reminder for one local day: what it lists, and enqueuing it exactly once.

The claim is a `reminder_days` row unique on (team, local date), inserted in the same transaction as the
outbox row (itself deduped on `reminder:<team>:<YYYY-MM-DD>`), so a restart, a second clock or a failover
never posts a day twice. A day with nothing due is claimed too, with no notification: nothing is sent.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.db.base import utcnow
from bot.db.session import Database
from bot.db.upsert import insert_unless_present
from bot.log import get_logger
from bot.notifications.models import Notification, NotificationStatus
from bot.notifications.service import insert_outbox_rows
from bot.registry.models import Key
from bot.reminders.codec import reminder_from_facts, reminder_json
from bot.reminders.due import due_keys, load_schedules
from bot.reminders.models import KeyEvent, ReminderDay
from bot.reminders.schedule import TEAMLESS, TeamSchedule
from bot.reminders.settings import ReminderSettings, reminder_settings
from bot.reminders.types import DueKey, DueState, Reminder
from bot.runbooks.refusals import RunRefused
from bot.secrets import redact

KIND = "rotation_reminder"
NO_CHANNEL = "give the team a channel, or set KEYBOT_REMINDER_FALLBACK_CHANNEL or KEYBOT_SECURITY_CHANNEL"
log = get_logger(__name__)


def dedupe_key(team: str | None, local_date: date) -> str:
    return f"reminder:{team if team is not None else TEAMLESS}:{local_date.isoformat()}"


def late_note(schedule: TeamSchedule) -> str:
    return f"sent late: keybot's clock was down at {schedule.at.strftime('%H:%M')}"


def schedule_of(database: Database, team: str | None, settings: ReminderSettings) -> TeamSchedule:
    with database.session() as session:
        schedules = load_schedules(session, settings)
    if team not in schedules:
        raise RunRefused(f"unknown team {team!r}; see `keybot registry export` for the teams")
    return schedules[team]


def build_reminder(
    schedule: TeamSchedule,
    keys: list[DueKey],
    local_date: date,
    settings: ReminderSettings,
    *,
    late: str | None = None,
) -> Reminder | None:
    """The message for one team and day from its due keys; None when nothing is due."""
    listed = tuple(k for k in keys if k.state in (DueState.OVERDUE, DueState.DUE_SOON))
    if not listed:
        return None
    channel = schedule.channel or settings.channel_for_teamless() or ""
    return Reminder(schedule.team, channel, local_date, schedule.timezone, listed, late_note=late)


def reminder_for(
    database: Database,
    team: str | None,
    local_date: date,
    now: datetime,
    *,
    late: str | None = None,
    settings: ReminderSettings | None = None,
) -> Reminder | None:
    """Exactly what the team's message for `local_date` lists (as of its slot, or now when later)."""
    settings = settings or reminder_settings()
    schedule = schedule_of(database, team, settings)
    moment = max(now, schedule.slot(local_date))
    keys = due_keys(
        database,
        moment,
        team=team if team is not None else TEAMLESS,
        horizon_days=settings.horizon_days,
        settings=settings,
    )
    return build_reminder(schedule, keys, local_date, settings, late=late)


def reminder_text(reminder: Reminder) -> tuple[str, str]:
    """Subject and plain-text body: the outbox row's fallback text (Slack renders the blocks)."""
    who = reminder.team or "keys without a team"
    subject = f"Rotation reminder for {who}: {len(reminder.keys)} key(s) due"
    lines = []
    for key in reminder.keys:
        owners = " ".join(f"<@{o}>" for o in key.owners) or "no owner recorded"
        if key.days_overdue >= 0:
            when = f"overdue by {key.days_overdue} day(s)"
        else:
            when = f"due {key.due_at.date().isoformat()}"
        never = ", never rotated" if key.never_rotated else ""
        done = " ✓ rotated" if key.key_id in reminder.done_key_ids else ""
        lines.append(f"• {key.name} ({key.environment}): {when}{never} · {owners}{done}")
    if reminder.late_note:
        lines.append(f"_{reminder.late_note}_")
    return subject, "\n".join(lines)


def outbox_row(reminder: Reminder, dedupe: str) -> dict[str, Any]:
    """The notification row for a reminder. Only the key names are free text, so only they (and the
    subject and body) go through the redactor: walking every date and id of a 500-key message with
    `redact_obj` would cost more than the whole due computation."""
    subject, body = reminder_text(reminder)
    facts = reminder_json(reminder)
    for key in facts["keys"]:
        key["name"] = redact(key["name"])
    now = utcnow()
    return {
        "dedupe_key": dedupe, "incident_id": None, "run_id": None, "kind": KIND,
        "recipient": reminder.channel, "subject": redact(subject)[:300], "body": redact(body),
        "facts": {"reminder": facts}, "status": NotificationStatus.PENDING, "attempts": 0,
        "created_at": now, "next_attempt_at": now,
    }  # fmt: skip


def claim_and_enqueue(
    session: Session, team: str | None, local_date: date, reminder: Reminder | None, *, late: bool
) -> int | None:
    """Claim (team, day) and enqueue its message in the caller's transaction; None when already claimed.

    Returns the notification id, or 0 when the day was claimed with nothing to send.
    """
    label = team if team is not None else TEAMLESS
    dialect = session.get_bind().dialect.name
    table = ReminderDay.__table__
    claimed = session.execute(
        insert_unless_present(dialect, table, ["team", "local_date"]).returning(ReminderDay.id),  # type: ignore[arg-type]
        [{"team": label, "local_date": local_date, "late": late, "created_at": utcnow()}],
    ).all()
    if not claimed:
        return None
    if reminder is None:
        return 0
    if not reminder.channel:
        log.warning("rotation reminder not sent: no channel", team=label, hint=NO_CHANNEL)
        return 0
    if not insert_outbox_rows(session, [outbox_row(reminder, dedupe_key(team, local_date))]):
        return None
    notification_id = session.scalars(
        select(Notification.id).where(Notification.dedupe_key == dedupe_key(team, local_date))
    ).one()
    session.execute(
        update(ReminderDay).where(ReminderDay.id == claimed[0][0]).values(notification_id=notification_id)
    )
    now = utcnow()
    session.execute(
        KeyEvent.__table__.insert(),  # type: ignore[attr-defined]
        [
            {
                "key_id": k.key_id,
                "at": now,
                "actor": "keybot",
                "kind": "reminded",
                "data": {"team": label, "local_date": local_date.isoformat(), "late": late},
            }
            for k in reminder.keys
        ],
    )
    return notification_id


def send_reminder(
    database: Database,
    team: str | None,
    local_date: date,
    now: datetime,
    *,
    late_note: str | None = None,
    settings: ReminderSettings | None = None,
) -> int | None:
    """Enqueue the team's message for `local_date` unless that day was already handled.

    Returns the notification id (delivered by the `deliver_notifications` job), 0 when nothing was due,
    None when the day had already been handled (by this or another clock).
    """
    settings = settings or reminder_settings()
    reminder = reminder_for(database, team, local_date, now, late=late_note, settings=settings)
    with database.session() as session:
        return claim_and_enqueue(session, team, local_date, reminder, late=late_note is not None)


def posted_reminder(database: Database, team: str | None, local_date: date) -> Reminder | None:
    """The day's message as enqueued, with the keys rotated since marked done: what an edit shows."""
    with database.session() as session:
        row = session.execute(
            select(Notification.facts).where(Notification.dedupe_key == dedupe_key(team, local_date))
        ).first()
        if row is None or "reminder" not in (row[0] or {}):
            return None
        facts: dict[str, Any] = row[0]
        reminder = reminder_from_facts(facts)
        counted = {k.key_id: k.counted_from for k in reminder.keys}
        rotated = session.execute(
            select(Key.id, Key.last_rotated_at).where(
                Key.id.in_(list(counted)), Key.last_rotated_at.is_not(None)
            )
        ).all()
    done = [key_id for key_id, at in rotated if at is not None and at > counted[key_id]]
    return Reminder(
        reminder.team,
        reminder.channel,
        reminder.local_date,
        reminder.timezone,
        reminder.keys,
        late_note=reminder.late_note,
        done_key_ids=frozenset(done),
    )
