"""Rotation reminders through Slack: post the day's message (remembering where), and edit it in place.

The outbox delivers reminder and escalation rows like any other notification, from whichever process
delivers (the web worker after a run, or `keybot clock`); :class:`ReminderSender` renders them with the
Block Kit renderers and records the posted message. When a rotation's notifications are delivered, or a
key is marked rotated, the day's message that listed the key is re-rendered from the database (keys
rotated since it was posted show as done) and edited with chat.update: idempotent, so any number of
triggers, from any process, converge on the same message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime

from bot.db.base import utcnow
from bot.db.session import Database
from bot.log import get_logger
from bot.notifications.models import Notification
from bot.registry.models import Key
from bot.reminders import delivery as reminder_delivery
from bot.reminders import escalation as reminder_escalation
from bot.reminders.codec import escalation_from_facts, reminder_from_facts
from bot.reminders.due import due_query, load_schedules, shape
from bot.reminders.service import record_posted, reminder_post
from bot.reminders.settings import reminder_settings
from bot.reminders.types import DueKey, DueState
from bot.runbooks import names
from bot.runbooks.models import Run
from bot.slack.api import SlackAPI, SlackError
from bot.slack.blocks.reminders import (
    escalation_blocks,
    escalation_text,
    reminder_blocks,
    reminder_text,
    rotation_line,
)
from bot.slack.delivery import Renderer, SlackSender, notification_metadata

log = get_logger(__name__)

REMINDER_KIND = reminder_delivery.KIND
ESCALATION_KIND = reminder_escalation.KIND
MAX_VIEWS = 500  # App Home lists at most 200 keys (bot/runbooks/overview.py)


def rotation_views(database: Database, key_ids: Iterable[int], now: datetime) -> dict[int, DueKey]:
    """The reminders' view of some keys (state, snooze, next reminder) for App Home and the key card:
    the domain's due query narrowed to these keys, so any number of keys costs two queries.

    Never raises: a broken reminder setting must not take the Home tab or ``/key-owner`` down with it.
    """
    wanted = list(key_ids)[:MAX_VIEWS]
    if not wanted:
        return {}
    try:
        settings = reminder_settings()
        with database.session() as session:
            dialect = session.get_bind().dialect.name
            rows = session.execute(due_query(dialect, settings).where(Key.id.in_(wanted))).all()
            schedules = load_schedules(session, settings)
        return {k.key_id: k for k in shape(rows, now, settings.horizon_days, schedules)}
    except Exception:
        log.exception("rotation state unavailable")
        return {}


def home_due(
    keys: Sequence[Key], registry_due: Sequence[tuple[Key, str]], rotation: Mapping[int, DueKey]
) -> list[tuple[Key, str]]:
    """App Home's "Rotations due": the keys the reminders list or snoozed (team and environment defaults
    included), oldest due first; the registry's own list when the reminders' view is unavailable."""
    if not rotation:
        return list(registry_due)
    listed = [k for k in keys if k.id in rotation and rotation[k.id].state is not DueState.OK]
    listed.sort(key=lambda k: (rotation[k.id].due_at, k.id))
    return [(k, rotation_line(rotation[k.id])) for k in listed]


def refresh_posted(database: Database, api: SlackAPI, team: str | None, local_date: date) -> bool:
    """Re-render one posted reminder and edit it in place; False when that day had no message."""
    where = reminder_post(database, team, local_date)
    reminder = reminder_delivery.posted_reminder(database, team, local_date) if where else None
    if where is None or reminder is None:
        return False
    channel, ts = where
    api.update_message(channel, ts, reminder_text(reminder), reminder_blocks(reminder))
    return True


def reminder_day_of(database: Database, key_id: int, now: datetime) -> tuple[str | None, date] | None:
    """The key's team and the local day of its team's latest reminder slot (the message that listed it)."""
    with database.session() as session:
        key = session.get(Key, key_id)
        if key is None:
            return None
        team = key.team.name if key.team is not None else None
    try:
        schedule = reminder_delivery.schedule_of(database, team, reminder_settings())
    except Exception:  # an unknown team or a broken setting: there is no message to edit
        return None
    latest = schedule.latest_slot(now)
    return (team, latest[0]) if latest is not None else None


def refresh_for_key(
    database: Database, api: SlackAPI, key_id: int, *, day: date | None = None, now: datetime | None = None
) -> bool:
    """Edit the reminder that listed the key (``day``'s, else the latest) so it shows the key's state.

    Never raises: the rotation or the mark already happened; a message that cannot be edited is logged.
    """
    try:
        found = reminder_day_of(database, key_id, now or utcnow())
        if found is None:
            return False
        team, latest = found
        return refresh_posted(database, api, team, day or latest)
    except SlackError as error:
        log.warning("reminder message not edited", key_id=key_id, code=error.code, why=error.explanation)
    except Exception:
        log.exception("reminder message edit failed", key_id=key_id)
    return False


class ReminderSender(SlackSender):
    """The outbox's Slack sender, which also posts reminders and escalations and edits reminders in place."""

    def __init__(
        self, api: SlackAPI, database: Database, *, render: Renderer | None = None, open_dms: bool = False
    ) -> None:
        super().__init__(api, render=render, open_dms=open_dms)
        self.database = database

    def send(self, notification: Notification) -> None:
        facts = notification.facts or {}
        if notification.kind == REMINDER_KIND and "reminder" in facts:
            self._post_reminder(notification)
            return
        if notification.kind == ESCALATION_KIND and "escalation" in facts:
            escalation = escalation_from_facts(facts)
            self.api.post_message(
                self.destination(notification),
                escalation_text(escalation),
                escalation_blocks(escalation),
                metadata=notification_metadata(notification),
            )
            return
        super().send(notification)
        key_id = self._rotated_key(notification)
        if key_id is not None:
            refresh_for_key(self.database, self.api, key_id)

    def _post_reminder(self, notification: Notification) -> None:
        reminder = reminder_from_facts(notification.facts)
        posted = self.api.post_message(
            notification.recipient.strip(),
            reminder_text(reminder),
            reminder_blocks(reminder),
            metadata=notification_metadata(notification),
        )
        try:
            record_posted(self.database, reminder.team, reminder.local_date, posted.channel, posted.ts)
        except Exception:  # posted already: raising would post it again; it just cannot be edited later
            log.exception("reminder posted but its location not recorded", team=reminder.team)

    def _rotated_key(self, notification: Notification) -> int | None:
        """The rotated key, looked up by the run (notification facts name the key, not its id)."""
        facts = notification.facts or {}
        if facts.get("runbook") != names.ROTATE or facts.get("drill") or notification.run_id is None:
            return None
        if notification.kind != ("channel" if facts.get("team_channel") else "owner_dm"):
            return None
        with self.database.session() as session:
            run = session.get(Run, notification.run_id)
            return run.key_id if run is not None else None
