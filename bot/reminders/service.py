"""The decisions people make on a reminder: snooze, mark rotated, rotate now; and the key's timeline.

Each checks the access policy itself, inside the transaction that applies it, before anything is written,
so a refused click changes no row. Refusals are `RunRefused` (`NotAllowed` for permissions) whose message
says why and, for permissions, who may.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from bot.access.policy import Actor, Decision, Policy, Subject
from bot.db.base import utcnow
from bot.db.session import Database
from bot.db.upsert import insert_unless_present
from bot.registry.models import Key, OwnerRole
from bot.reminders.due import key_due
from bot.reminders.models import KeyEvent, KeySnooze, ReminderDay
from bot.reminders.schedule import TEAMLESS
from bot.reminders.settings import ReminderSettings, check_timezone, reminder_settings
from bot.reminders.types import DueKey
from bot.runbooks import names
from bot.runbooks.decisions import as_actor, clean, lock_row
from bot.runbooks.definitions import RunbookDefinition
from bot.runbooks.refusals import RunRefused


def record_event(session: Session, key_id: int, actor: str, kind: str, data: dict[str, Any]) -> None:
    """Append one entry to the key's timeline (never updated or deleted)."""
    session.add(KeyEvent(key_id=key_id, at=utcnow(), actor=actor, kind=kind, data=data))


def timeline(database: Database, key_id: int, *, limit: int = 50) -> list[dict[str, Any]]:
    """The key's latest timeline entries, newest first, as plain data for cards and the CLI."""
    with database.session() as session:
        events = session.scalars(
            select(KeyEvent).where(KeyEvent.key_id == key_id).order_by(KeyEvent.at.desc(), KeyEvent.id.desc())
        ).all()[:limit]
        return [{"at": e.at, "actor": e.actor, "kind": e.kind, "data": dict(e.data)} for e in events]


def _key_for(session: Session, key_id: int, decision: Decision, actor: Actor, policy: Policy) -> Key:
    lock_row(session, Key, key_id)
    key = session.scalars(select(Key).where(Key.id == key_id).with_for_update(of=Key)).first()
    if key is None or key.drill:
        raise RunRefused(f"no key #{key_id} in the registry")
    subject = Subject(
        key.name, key.environment, tuple(key.owner_ids()), tuple(key.owner_ids(OwnerRole.BACKUP))
    )
    policy.check(decision, actor, subject)
    return key


def snooze(
    database: Database,
    key_id: int,
    actor: Actor | str,
    *,
    days: int,
    reason: str,
    policy: Policy,
    now: datetime | None = None,
    settings: ReminderSettings | None = None,
) -> DueKey:
    """Hide the key from reminders for `days` days; owners, backups, revokers and admins may."""
    settings = settings or reminder_settings()
    who, now = as_actor(actor), now or utcnow()
    if not 1 <= days <= settings.max_snooze_days:
        raise RunRefused(f"a snooze lasts 1 to {settings.max_snooze_days} days (got {days}); nothing changed")
    reason = clean(reason)
    if not reason:
        raise RunRefused("a reason is required to snooze a reminder; nothing changed")
    until = now + timedelta(days=days)
    with database.session() as session:
        key = _key_for(session, key_id, Decision.SNOOZE, who, policy)
        session.add(KeySnooze(key_id=key.id, until=until, reason=reason, by=who.id, at=now))
        record_event(
            session, key.id, who.id, "snoozed", {"days": days, "until": until.isoformat(), "reason": reason}
        )
    return _due(database, key_id, now, settings)


def _due(database: Database, key_id: int, now: datetime, settings: ReminderSettings) -> DueKey:
    state = key_due(database, key_id, now, settings=settings)
    if state is None:  # revoked meanwhile
        raise RunRefused(f"key #{key_id} is no longer active")
    return state


def _zone_name(team_zone: str | None, settings: ReminderSettings) -> str:
    """The team's timezone, or the default when it has none (or a stored one zoneinfo no longer knows)."""
    try:
        return check_timezone(team_zone) if team_zone else settings.timezone
    except ValueError:
        return settings.timezone


def mark_rotated(
    database: Database,
    key_id: int,
    actor: Actor | str,
    *,
    rotated_on: date,
    note: str,
    policy: Policy,
    now: datetime | None = None,
    settings: ReminderSettings | None = None,
) -> DueKey:
    """A rotation done outside keybot: sets the last rotation, ends snoozes, records who said so."""
    settings = settings or reminder_settings()
    who, now = as_actor(actor), now or utcnow()
    note = clean(note)
    with database.session() as session:
        key = _key_for(session, key_id, Decision.MARK_ROTATED, who, policy)
        zone = ZoneInfo(_zone_name(key.team.timezone if key.team else None, settings))
        today = now.astimezone(zone).date()
        registered = key.created_at.astimezone(zone).date()
        if rotated_on > today:
            raise RunRefused(f"{rotated_on} is in the future (today is {today}); nothing changed")
        if rotated_on < registered:
            raise RunRefused(
                f"{rotated_on} is before {key.name} was registered ({registered}); nothing changed"
            )
        if key.last_rotated_at is not None and rotated_on < key.last_rotated_at.astimezone(zone).date():
            raise RunRefused(
                f"{key.name} was already rotated later, on {key.last_rotated_at.astimezone(zone).date()}; "
                "nothing changed"
            )
        start_of_day = datetime.combine(rotated_on, time(0), tzinfo=zone).astimezone(UTC)
        key.last_rotated_at = min(now, max(start_of_day, key.created_at))
        session.execute(delete(KeySnooze).where(KeySnooze.key_id == key.id))
        record_event(
            session, key.id, who.id, "marked_rotated", {"rotated_on": rotated_on.isoformat(), "note": note}
        )
    return _due(database, key_id, now, settings)


def start_rotation(
    database: Database,
    runbooks: dict[str, RunbookDefinition],
    key_id: int,
    actor: Actor | str,
    *,
    policy: Policy,
    in_revoker_group: bool = False,
) -> str:
    """Rotate now: the one planned rotation (`rotate.yaml`) every surface starts; returns the run id.

    When the run completes, the engine sets the key's `last_rotated_at`, so it leaves the next reminder.
    """
    who = as_actor(actor)
    if in_revoker_group and not who.in_revoker_group:
        who = Actor(who.id, in_revoker_group=True, break_glass=who.break_glass)
    return names.start_rotation(database, runbooks, policy=policy, key_id=key_id, actor=who)


def record_posted(database: Database, team: str | None, local_date: date, channel: str, ts: str) -> None:
    """Remember where the team's message for `local_date` was posted, so it can be edited in place."""
    label = team if team is not None else TEAMLESS
    with database.session() as session:
        dialect = session.get_bind().dialect.name
        table = ReminderDay.__table__
        session.execute(
            insert_unless_present(dialect, table, ["team", "local_date"]),  # type: ignore[arg-type]
            [{"team": label, "local_date": local_date, "late": False, "created_at": utcnow()}],
        )
        session.execute(
            update(ReminderDay)
            .where(ReminderDay.team == label, ReminderDay.local_date == local_date)
            .values(channel=channel, ts=ts)
        )


def reminder_post(database: Database, team: str | None, local_date: date) -> tuple[str, str] | None:
    """(channel, ts) of the team's posted message for `local_date`, or None when none was posted."""
    label = team if team is not None else TEAMLESS
    with database.session() as session:
        row = session.execute(
            select(ReminderDay.channel, ReminderDay.ts).where(
                ReminderDay.team == label, ReminderDay.local_date == local_date
            )
        ).first()
    if row is None or row[0] is None or row[1] is None:
        return None
    return row[0], row[1]
