"""Which keys are due: one SQL query over the registry, oldest due first.

The database filters (non-drill, not revoked, team, due within the horizon) and sorts by the due date it
computes itself, so a sweep over 100,000 keys moves only the keys that are due; Python then only shapes
those rows into `DueKey`s.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, DateTime, Select, String, func, literal, select, type_coerce
from sqlalchemy.orm import Session

from bot.db.session import Database
from bot.registry.models import Key, KeyOwner, KeyStatus, OwnerRole, Team
from bot.reminders.models import KeySnooze
from bot.reminders.policy import counted_from_sql, rotation_days_sql
from bot.reminders.schedule import TEAMLESS, TeamSchedule, team_schedule
from bot.reminders.settings import ReminderSettings, reminder_settings
from bot.reminders.types import DueKey, DueState

ALL_TEAMS = None


def load_schedules(session: Session, settings: ReminderSettings) -> dict[str | None, TeamSchedule]:
    """Every team's schedule, plus `None`: keys without a team, reminded in the fallback channel."""
    schedules: dict[str | None, TeamSchedule] = {}
    columns = (
        Team.name, Team.slack_channel, Team.manager_slack_id, Team.timezone, Team.reminder_time,
        Team.reminder_days,
    )  # fmt: skip
    for name, channel, manager, zone, at, days in session.execute(select(*columns)):
        schedules[name] = team_schedule(
            name,
            channel,
            manager,
            timezone=zone,
            reminder_time=at,
            reminder_days=days,
            default_timezone=settings.timezone,
        )
    schedules[None] = team_schedule(
        None, settings.channel_for_teamless(), None, timezone=None, reminder_time=None,
        reminder_days=None, default_timezone=settings.timezone,
    )  # fmt: skip
    return schedules


def _instant_sql(dialect: str, moment: ColumnElement[Any]) -> ColumnElement[Any]:
    """An instant fetched without the per-value UTC decorator: SQLite's stored text (parsed in one C call
    by `_instant`), PostgreSQL's own timestamptz. Exact to the microsecond, unlike an epoch float."""
    if dialect == "sqlite":
        return type_coerce(moment, String())
    return type_coerce(moment, DateTime(timezone=True))


def _instant(value: str | datetime) -> datetime:
    if isinstance(value, str):
        return datetime.fromisoformat(value + "+00:00")
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def _due_at_sql(dialect: str, days: ColumnElement[Any]) -> ColumnElement[Any]:
    """The due instant as something the database can compare and sort (a Julian day on SQLite)."""
    if dialect == "sqlite":
        return func.julianday(counted_from_sql()) + days
    return counted_from_sql() + func.make_interval(0, 0, 0, days)


def _limit_sql(dialect: str, limit: datetime) -> ColumnElement[Any]:
    if dialect == "sqlite":
        return func.julianday(literal(limit.strftime("%Y-%m-%d %H:%M:%S.%f")))
    return literal(limit)


def _owners_sql(dialect: str) -> ColumnElement[Any]:
    """The key's owners as one comma-separated string (Slack ids hold no comma)."""
    users = KeyOwner.slack_user_id
    joined = func.group_concat(users, ",") if dialect == "sqlite" else func.string_agg(users, ",")
    return (
        select(joined)
        .where(KeyOwner.key_id == Key.id, KeyOwner.role == OwnerRole.OWNER)
        .correlate(Key)
        .scalar_subquery()
    )


def due_query(
    dialect: str,
    settings: ReminderSettings,
    *,
    team: str | None = ALL_TEAMS,
    limit: datetime | None = None,
    key_id: int | None = None,
) -> Select[Any]:
    """The one query: every live key's policy, counted-from instant and snoozes, oldest due first."""
    days = rotation_days_sql(settings.rotation_defaults()).label("rotation_days")
    snoozes = (
        select(
            KeySnooze.key_id,
            func.max(KeySnooze.until).label("until"),
            func.count().label("snoozes"),
        )
        .join(Key, Key.id == KeySnooze.key_id)
        .where(KeySnooze.at >= counted_from_sql())
        .group_by(KeySnooze.key_id)
        .subquery()
    )
    due_at = _due_at_sql(dialect, days)
    query = (
        select(
            Key.id,
            Key.name,
            Key.environment,
            Team.name,
            days,
            _instant_sql(dialect, counted_from_sql()),
            Key.last_rotated_at.is_(None),
            snoozes.c.until,
            snoozes.c.snoozes,
            _owners_sql(dialect),
        )
        .outerjoin(Team, Team.id == Key.team_id)
        .outerjoin(snoozes, snoozes.c.key_id == Key.id)
        .where(Key.drill.is_(False), Key.status != KeyStatus.REVOKED)
        .order_by(due_at, Key.id)
    )
    if team == TEAMLESS:
        query = query.where(Key.team_id.is_(None))
    elif team is not None:
        query = query.where(Team.name == team)
    if limit is not None:
        query = query.where(due_at <= _limit_sql(dialect, limit))
    if key_id is not None:
        query = query.where(Key.id == key_id)
    return query


def _next_reminder(
    schedule: TeamSchedule | None,
    due_at: datetime,
    snoozed_until: datetime | None,
    now: datetime,
    horizon: int,
) -> Any:
    if schedule is None:
        return None
    after = max(now, due_at - timedelta(days=horizon), snoozed_until or now)
    return schedule.next_day(after)


def shape(
    rows: Iterable[Any],
    now: datetime,
    horizon: int,
    schedules: dict[str | None, TeamSchedule] | None = None,
) -> list[DueKey]:
    """Rows of `due_query` as DueKeys; with `schedules`, each key's next reminder day is filled in."""
    shaped = []
    soon, day = now + timedelta(days=horizon), timedelta(days=1)
    periods: dict[int, timedelta] = {}  # a handful of distinct policies: build each timedelta once
    for key_id, name, env, team, days, counted_at, never, until, snoozes, owners in rows:
        counted = _instant(counted_at)
        period = periods.get(days)
        if period is None:
            period = periods[days] = timedelta(days=days)
        due_at = counted + period
        active_until = until if until is not None and until > now else None
        if due_at > soon:
            state = DueState.OK
        elif active_until is not None:
            state = DueState.SNOOZED
        else:
            state = DueState.OVERDUE if due_at <= now else DueState.DUE_SOON
        next_reminder = None
        if schedules is not None:
            next_reminder = _next_reminder(schedules.get(team), due_at, active_until, now, horizon)
        shaped.append(
            DueKey(
                key_id,
                name,
                env,
                team,
                tuple(owners.split(",")) if owners else (),
                days,
                counted,
                bool(never),
                due_at,
                (now - due_at) // day,
                state,
                active_until,
                snoozes or 0,
                next_reminder,
            )
        )
    return shaped


def due_keys(
    database: Database,
    now: datetime,
    *,
    team: str | None = ALL_TEAMS,
    horizon_days: int | None = None,
    settings: ReminderSettings | None = None,
    next_reminders: bool = False,
) -> list[DueKey]:
    """Every non-drill, non-revoked key's state, oldest due first.

    `team` None: all teams; `"*"`: keys without a team. `horizon_days` given: only keys due by then
    (snoozed ones included, as SNOOZED). `next_reminders` also fills each key's next reminder day.
    """
    settings = settings or reminder_settings()
    horizon = settings.horizon_days if horizon_days is None else horizon_days
    limit = None if horizon_days is None else now + timedelta(days=horizon_days)
    with database.session() as session:
        dialect = session.get_bind().dialect.name
        rows = session.connection().execute(due_query(dialect, settings, team=team, limit=limit)).all()
        schedules = load_schedules(session, settings) if next_reminders else None
    return shape(rows, now, horizon, schedules)


def key_due(
    database: Database, key_id: int, now: datetime, *, settings: ReminderSettings | None = None
) -> DueKey | None:
    """One key's rotation state with its next reminder day (for the key card); None for drills/revoked."""
    settings = settings or reminder_settings()
    with database.session() as session:
        dialect = session.get_bind().dialect.name
        rows = session.execute(due_query(dialect, settings, key_id=key_id)).all()
        schedules = load_schedules(session, settings)
    shaped = shape(rows, now, settings.horizon_days, schedules)
    return shaped[0] if shaped else None
