"""When each team is reminded: a local time on chosen weekdays in the team's timezone.

Local dates come from zoneinfo, so a DST change never doubles or skips a day: each local date has exactly
one slot (a time that does not exist that day, inside a spring-forward gap, falls just after the gap; a
time that happens twice, in the autumn, is the first of the two).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.reminders.settings import check_timezone

DEFAULT_TIME = time(9, 30)
WEEKDAYS = frozenset(range(5))  # Monday..Friday
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
TEAMLESS = "*"
"""The reminder-day and dedupe name of keys without a team (`*` is not a valid team name character)."""


def parse_reminder_time(value: str) -> time:
    """`HH:MM` (24-hour), else ValueError."""
    match = _TIME.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"{value[:20]!r} is not a time like 09:30 (HH:MM, 24-hour)")
    return time(int(match.group(1)), int(match.group(2)))


def parse_reminder_days(value: str) -> frozenset[int]:
    """`mon-fri`, `daily` or a list like `mon,wed,fri`, else ValueError."""
    text = value.strip().lower()
    if text in ("weekdays", "mon-fri"):
        return WEEKDAYS
    if text in ("daily", "mon-sun"):
        return frozenset(range(7))
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in DAY_NAMES]
    if unknown or not names:
        raise ValueError(f"{value[:40]!r} is not weekdays, daily or a list of days like mon,wed,fri")
    return frozenset(DAY_NAMES.index(n) for n in names)


def check_team_schedule(
    timezone: str | None = None, reminder_time: str | None = None, reminder_days: str | None = None
) -> None:
    """Raise ValueError for the first bad field (used by the registry importer)."""
    if timezone is not None:
        check_timezone(timezone)
    if reminder_time is not None:
        parse_reminder_time(reminder_time)
    if reminder_days is not None:
        parse_reminder_days(reminder_days)


@dataclass(frozen=True)
class TeamSchedule:
    """One team's reminder schedule; `team` None for keys without a team."""

    team: str | None
    channel: str | None
    manager: str | None
    timezone: str
    at: time = DEFAULT_TIME
    days: frozenset[int] = WEEKDAYS

    @property
    def label(self) -> str:
        return self.team if self.team is not None else TEAMLESS

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def local_date(self, moment: datetime) -> date:
        return moment.astimezone(self.zone).date()

    def slot(self, day: date) -> datetime:
        """The UTC instant of `day`'s reminder (whether or not `day` is a reminder day)."""
        return datetime.combine(day, self.at, tzinfo=self.zone).astimezone(UTC)

    def latest_slot(self, now: datetime) -> tuple[date, datetime] | None:
        """The most recent reminder slot at or before `now` within a week, as (local date, UTC instant)."""
        today = self.local_date(now)
        for back in range(8):
            day = today - timedelta(days=back)
            if day.weekday() in self.days and self.slot(day) <= now:
                return day, self.slot(day)
        return None

    def next_day(self, after: datetime) -> date | None:
        """The first reminder day whose slot is at or after `after`."""
        start = self.local_date(after)
        for ahead in range(8):
            day = start + timedelta(days=ahead)
            if day.weekday() in self.days and self.slot(day) >= after:
                return day
        return None


def team_schedule(
    team: str | None,
    channel: str | None,
    manager: str | None,
    *,
    timezone: str | None,
    reminder_time: str | None,
    reminder_days: str | None,
    default_timezone: str,
) -> TeamSchedule:
    """A team's schedule from its row; a value that no longer parses falls back to the default."""
    zone = default_timezone
    if timezone:
        try:
            zone = check_timezone(timezone)
        except ValueError:
            zone = default_timezone
    try:
        at = parse_reminder_time(reminder_time) if reminder_time else DEFAULT_TIME
    except ValueError:
        at = DEFAULT_TIME
    try:
        days = parse_reminder_days(reminder_days) if reminder_days else WEEKDAYS
    except ValueError:
        days = WEEKDAYS
    return TeamSchedule(team, channel, manager, zone, at, days)
