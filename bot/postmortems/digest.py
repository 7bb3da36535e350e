"""The weekly digest's facts: what managers learn about one ISO week, computed from the rows, never typed in.

The week is the digest timezone's (KEYBOT_DIGEST_TIMEZONE) Monday 00:00 to the next Monday 00:00. Drills
are counted apart and never named: the digest goes to a managers' channel, where a drill is not news.
Time to contain is measured from an incident's opening to its containment (`contained_at`, else
`resolved_at` for an incident resolved without a separate containment), for the real incidents contained
during the week; false alarms contain nothing and are left out of it.

`digest_as_data` is the JSON-safe mapping the `weekly_digest.md.j2` template sees and the outbox row
keeps (the chart is redrawn from it when the message is delivered).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from bot.alerts.models import Alert
from bot.alerts.types import AlertState
from bot.db.session import Database
from bot.incidents.models import Incident, IncidentStatus
from bot.postmortems.chart import DigestChartData
from bot.registry.models import Key, Team
from bot.reminders.due import due_keys
from bot.reminders.types import DueState
from bot.secrets import redact

MAX_LISTED = 20
"""Incidents and overdue keys named per team; the rest are counted (a digest is read in a minute)."""


@dataclass(frozen=True)
class DigestIncident:
    reference: str
    title: str  # redacted
    status: str
    severity: str
    key_name: str | None
    team: str | None
    opened_at: datetime
    contain_seconds: float | None  # None: not contained (yet), or a false alarm


@dataclass(frozen=True)
class TeamOverdue:
    team: str  # "(no team)" for keys without one
    count: int
    keys: tuple[str, ...]  # names, at most MAX_LISTED, most overdue first
    oldest_days: int  # days the most overdue key is past due


@dataclass(frozen=True)
class WeeklyDigest:
    week: str  # 2026-W47
    timezone: str
    start: datetime  # UTC, the local Monday 00:00
    end: datetime  # UTC, the next local Monday 00:00
    incidents_opened: int
    incidents_resolved: int  # resolved during the week (false alarms apart)
    false_alarms: int
    incidents: tuple[DigestIncident, ...]  # opened during the week, or contained during it
    contained: int  # how many the median is taken over
    median_contain_seconds: float | None
    overdue: tuple[TeamOverdue, ...]
    overdue_total: int
    alerts_opened: int
    alerts_false_positive: int
    alerts_acknowledged: int
    drills: int  # drills opened during the week: counted, never named
    chart: DigestChartData


def iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def week_bounds(week_monday: date, timezone: str) -> tuple[datetime, datetime]:
    """UTC instants of the local Monday 00:00 and of the next Monday 00:00 (DST-aware)."""
    zone = ZoneInfo(timezone)
    start = datetime.combine(week_monday, time(0), tzinfo=zone)
    end = datetime.combine(week_monday + timedelta(days=7), time(0), tzinfo=zone)
    return start.astimezone(ZoneInfo("UTC")), end.astimezone(ZoneInfo("UTC"))


def previous_week_monday(now: datetime, timezone: str) -> date:
    """The Monday of the last complete ISO week before `now` (in `timezone`)."""
    local = now.astimezone(ZoneInfo(timezone)).date()
    return local - timedelta(days=local.weekday() + 7)


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite gives naive datetimes back; every stored datetime is UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=ZoneInfo("UTC"))


def contained_moment(incident: Incident) -> datetime | None:
    """When the incident was contained: `contained_at`, else `resolved_at` of a resolved one."""
    if incident.status is IncidentStatus.FALSE_ALARM:
        return None
    if incident.contained_at is not None:
        return _aware(incident.contained_at)
    if incident.status is IncidentStatus.RESOLVED:
        return _aware(incident.resolved_at)
    return None


def _within(moment: datetime | None, start: datetime, end: datetime) -> bool:
    return moment is not None and start <= moment < end


def _median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def build_digest(database: Database, week_monday: date, timezone: str, *, now: datetime) -> WeeklyDigest:
    """The digest of the ISO week starting `week_monday` (local), with rotation state as of `now`."""
    start, end = week_bounds(week_monday, timezone)
    zone = ZoneInfo(timezone)
    days = tuple(week_monday + timedelta(days=i) for i in range(7))
    with database.session() as session:
        touched = session.scalars(
            select(Incident)
            .where(
                or_(
                    Incident.opened_at.between(start, end),
                    Incident.contained_at.between(start, end),
                    Incident.resolved_at.between(start, end),
                )
            )
            .order_by(Incident.opened_at, Incident.id)
        ).all()
        alerts = session.execute(
            select(Alert.opened_at, Alert.state, Alert.acked_at)
            .join(Key, Key.id == Alert.key_id)
            .where(Alert.opened_at >= start, Alert.opened_at < end, Key.drill.is_(False))
        ).all()
        names = _key_names(session, {i.key_id for i in touched if i.key_id is not None})
        real = [i for i in touched if not i.drill]
        drills = sum(1 for i in touched if i.drill and _within(_aware(i.opened_at), start, end))
        listed: list[DigestIncident] = []
        per_day_incidents = [0] * 7
        per_day_contain: dict[int, list[float]] = defaultdict(list)
        contain_all: list[float] = []
        opened = resolved = false_alarms = 0
        for incident in real:
            opened_at = _aware(incident.opened_at)
            assert opened_at is not None
            contained = contained_moment(incident)
            seconds = (contained - opened_at).total_seconds() if contained is not None else None
            if _within(opened_at, start, end):
                opened += 1
                per_day_incidents[(opened_at.astimezone(zone).date() - week_monday).days] += 1
            if _within(_aware(incident.resolved_at), start, end):
                if incident.status is IncidentStatus.FALSE_ALARM:
                    false_alarms += 1
                elif incident.status is IncidentStatus.RESOLVED:
                    resolved += 1
            if contained is not None and seconds is not None and _within(contained, start, end):
                contain_all.append(seconds)
                per_day_contain[(contained.astimezone(zone).date() - week_monday).days].append(seconds)
            key_name, team = names.get(incident.key_id or 0, (None, None))
            listed.append(
                DigestIncident(
                    incident.reference,
                    redact(incident.title)[:200],
                    incident.status.value,
                    incident.severity,
                    key_name,
                    team,
                    opened_at,
                    seconds if contained is not None and contained < end else None,
                )
            )
    per_day_alerts = [0] * 7
    false_positive = acknowledged = 0
    for opened_at, state, acked_at in alerts:
        moment = _aware(opened_at)
        assert moment is not None
        per_day_alerts[(moment.astimezone(zone).date() - week_monday).days] += 1
        false_positive += state is AlertState.FALSE_POSITIVE
        acknowledged += acked_at is not None
    overdue, overdue_total = _overdue(database, now)
    chart = DigestChartData(
        week=iso_week(week_monday),
        days=days,
        incidents=tuple(per_day_incidents),
        alerts=tuple(per_day_alerts),
        contain_minutes=tuple(
            None if not per_day_contain.get(i) else round(_median(per_day_contain[i]) / 60.0, 2)  # type: ignore[operator]
            for i in range(7)
        ),
    )
    return WeeklyDigest(
        week=iso_week(week_monday),
        timezone=timezone,
        start=start,
        end=end,
        incidents_opened=opened,
        incidents_resolved=resolved,
        false_alarms=false_alarms,
        incidents=tuple(listed[:MAX_LISTED]),
        contained=len(contain_all),
        median_contain_seconds=_median(contain_all),
        overdue=overdue,
        overdue_total=overdue_total,
        alerts_opened=len(alerts),
        alerts_false_positive=false_positive,
        alerts_acknowledged=acknowledged,
        drills=drills,
        chart=chart,
    )


def _key_names(session: Session, key_ids: set[int]) -> dict[int, tuple[str, str | None]]:
    """Key id → (redacted name, team name)."""
    if not key_ids:
        return {}
    rows = session.execute(
        select(Key.id, Key.name, Team.name).outerjoin(Team, Team.id == Key.team_id).where(Key.id.in_(key_ids))
    ).all()
    return {int(i): (redact(name), team) for i, name, team in rows}


def _overdue(database: Database, now: datetime) -> tuple[tuple[TeamOverdue, ...], int]:
    """Keys overdue for rotation, per team, most overdue first (drill keys are never listed by `due_keys`)."""
    teams: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for key in due_keys(database, now, horizon_days=0):
        if key.state is DueState.OVERDUE or (key.state is DueState.SNOOZED and key.days_overdue >= 0):
            team = key.team if key.team is not None else "(no team)"
            teams[team].append((key.days_overdue, redact(key.name)))
    found = []
    for team, keys in sorted(teams.items()):
        keys.sort(key=lambda k: (-k[0], k[1]))
        found.append(TeamOverdue(team, len(keys), tuple(n for _, n in keys[:MAX_LISTED]), keys[0][0]))
    return tuple(found), sum(t.count for t in found)


def duration_text(seconds: float | None) -> str:
    """`1 h 05 min`, `12 min`, `40 s`; "-" when unknown."""
    if seconds is None:
        return "-"
    total = round(seconds)
    if total < 60:
        return f"{total} s"
    hours, minutes = divmod(total // 60, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def digest_as_data(digest: WeeklyDigest) -> dict[str, Any]:
    """JSON-safe: what the template sees and the outbox keeps; datetimes as ISO text, durations also as
    readable text (`median_contain`), so the template needs no filters."""

    def plain(value: Any) -> Any:
        if isinstance(value, datetime | date):
            return value.isoformat()
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    data: dict[str, Any] = plain(asdict(digest))
    data["median_contain"] = duration_text(digest.median_contain_seconds)
    data["median_contain_minutes"] = _minutes(digest.median_contain_seconds)
    for item, incident in zip(data["incidents"], digest.incidents, strict=True):
        item["contain"] = duration_text(incident.contain_seconds)
        item["time_to_contain_minutes"] = _minutes(incident.contain_seconds)
    data["alerts"] = {
        "opened": digest.alerts_opened,
        "false_positives": digest.alerts_false_positive,
        "acknowledged": digest.alerts_acknowledged,
    }
    local = ZoneInfo(digest.timezone)
    data["first_day"] = digest.start.astimezone(local).date().isoformat()
    data["last_day"] = (digest.end.astimezone(local).date() - timedelta(days=1)).isoformat()
    return data


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60.0, 2)


def digest_from_data(data: dict[str, Any]) -> DigestChartData:
    """The chart data back from an outbox row's facts; ValueError when they are not a digest's."""
    try:
        chart = data["chart"]
        return DigestChartData(
            week=str(chart["week"]),
            days=tuple(date.fromisoformat(str(d)) for d in chart["days"]),
            incidents=tuple(int(v) for v in chart["incidents"]),
            alerts=tuple(int(v) for v in chart["alerts"]),
            contain_minutes=tuple(None if v is None else float(v) for v in chart["contain_minutes"]),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"not a digest's facts: {type(error).__name__}") from None


def digest_markdown(digest: WeeklyDigest) -> tuple[str, tuple[str, ...]]:
    """The digest rendered from `weekly_digest.md.j2` (user override first, the built-in on failure),
    with the template's warnings; a plain built-in rendering when the templating is not installed."""
    data = digest_as_data(digest)
    try:
        from bot.postmortems.templating import render
    except ImportError:
        return plain_markdown(data), ("templating unavailable: plain digest",)
    rendered = render("weekly_digest.md.j2", {"digest": data, **data})
    return rendered.text, tuple(rendered.warnings)


def plain_markdown(data: dict[str, Any]) -> str:
    """The digest without a template: the same figures, no prose."""
    lines = [
        f"# Weekly keybot digest {data['week']}",
        f"{data['first_day']} to {data['last_day']} ({data['timezone']})",
        "",
        "## Incidents",
        f"- Opened: {data['incidents_opened']}; resolved: {data['incidents_resolved']}; "
        f"false alarms: {data['false_alarms']}",
        f"- Median time to contain: {data['median_contain']} (over {data['contained']})",
    ]
    lines += [f"- {i['reference']} ({i['status']}): contained in {i['contain']}" for i in data["incidents"]]
    lines += ["", "## Keys overdue for rotation", f"- Total: {data['overdue_total']}"]
    lines += [f"- {t['team']}: {t['count']} ({', '.join(t['keys'])})" for t in data["overdue"]]
    lines += [
        "",
        "## Alerts",
        f"- Opened: {data['alerts_opened']}; false positives: {data['alerts_false_positive']}; "
        f"acknowledged: {data['alerts_acknowledged']}",
        "",
        f"Drills run this week: {data['drills']} (not counted above).",
    ]
    return "\n".join(lines) + "\n"
