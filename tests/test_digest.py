"""The weekly digest, on SQLite and PostgreSQL: its facts from fixed incidents, alerts and keys (local days of
the digest timezone, median time to contain, drills counted apart and never named), the chart's data and
PNG, and the clock job that posts it once per ISO week, after its slot, on however many clocks.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.alerts.models import Alert
from bot.alerts.types import AlertState
from bot.db.session import Database
from bot.incidents.models import Incident, IncidentStatus
from bot.notifications.models import Notification
from bot.postmortems.chart import DigestChartData, digest_chart
from bot.postmortems.digest import build_digest, digest_as_data, digest_from_data, plain_markdown
from bot.postmortems.jobs import run_digest, this_weeks_slot
from bot.postmortems.outbox import claim_digest, digest_dedupe
from bot.postmortems.settings import PostmortemSettings
from bot.registry.models import Key
from tests.alerts_helpers import add_key, add_team

PARIS = "Europe/Paris"  # UTC+1 in early March 2026 (summer time starts on the 29th)
MONDAY = date(2026, 3, 2)  # ISO week 2026-W10
SLOT = datetime(2026, 3, 9, 8, 0, tzinfo=UTC)  # Monday 9 March, 09:00 in Paris
DRILL_KEY = "drill-copy-of-pay"


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """UTC on a day of March 2026."""
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


def incident(
    session: Any,
    incident_id: int,
    key_id: int | None,
    opened: datetime,
    *,
    contained: datetime | None = None,
    resolved: datetime | None = None,
    status: IncidentStatus = IncidentStatus.OPEN,
    drill: bool = False,
) -> None:
    session.add(
        Incident(
            id=incident_id, key_id=key_id, title=f"leak {incident_id}", opened_by="U0ONCALL1",
            opened_at=opened, contained_at=contained, resolved_at=resolved, status=status, drill=drill,
        )
    )  # fmt: skip


def alert(
    session: Any, key_id: int, opened: datetime, state: AlertState, acked: datetime | None = None
) -> None:
    session.add(
        Alert(key_id=key_id, state=state, opened_at=opened, last_signal_at=opened, acked_at=acked,
              closed_at=opened + timedelta(hours=1) if state not in (AlertState.OPEN,) else None,
              pagerduty_key=f"pd-{key_id}-{opened.isoformat()}")
    )  # fmt: skip


def fixed_week(database: Database) -> None:
    """Incidents, alerts and keys around ISO week 2026-W10 in Paris (see each line for what it tests)."""
    add_team(database, "payments")
    add_team(database, "search", channel="C0SEARCH")
    pay = add_key(database, "pay-prod")  # registered now, never rotated: not overdue
    old = [add_key(database, name, team="search") for name in ("search-a", "search-b")]
    drill_key = add_key(database, DRILL_KEY, drill=True)
    with database.session() as session:
        for key_id in old:  # registered 400 days ago and never rotated: overdue
            key = session.get(Key, key_id)
            assert key is not None
            key.created_at = SLOT - timedelta(days=400)
        # Monday: opened 10:00, contained 30 min later, resolved at noon.
        incident(session, 1, pay, at(2, 10), contained=at(2, 10, 30), resolved=at(2, 12),
                 status=IncidentStatus.RESOLVED)  # fmt: skip
        # Tuesday 23:30 UTC is Wednesday 00:30 in Paris; resolved (no separate containment) an hour later.
        incident(session, 2, pay, at(3, 23, 30), resolved=at(4, 0, 30), status=IncidentStatus.RESOLVED)
        # Wednesday: contained in 10 minutes, still open.
        incident(session, 3, pay, at(4, 9), contained=at(4, 9, 10), status=IncidentStatus.CONTAINED)
        # Thursday: a false alarm, which contains nothing.
        incident(session, 4, pay, at(5, 8), resolved=at(5, 8, 20), status=IncidentStatus.FALSE_ALARM)
        # Opened the week before (Sunday 21:00 in Paris), contained on Monday 01:00 in Paris: 4 hours.
        incident(session, 5, pay, at(1, 20), contained=at(2, 0), status=IncidentStatus.CONTAINED)
        # The next week (Monday 08:00 in Paris): not in this digest.
        incident(session, 6, pay, at(9, 7))
        # A drill on Tuesday: counted apart, never named.
        incident(session, -1, drill_key, at(3, 10), contained=at(3, 10, 1), resolved=at(3, 10, 5),
                 status=IncidentStatus.RESOLVED, drill=True)  # fmt: skip
        alert(session, pay, at(2, 10), AlertState.FALSE_POSITIVE, acked=at(2, 10, 5))
        alert(session, old[0], at(2, 11), AlertState.RESOLVED, acked=at(2, 11, 2))
        alert(session, old[1], at(7, 23, 30), AlertState.OPEN)  # Sunday 00:30 in Paris
        alert(session, drill_key, at(3, 10), AlertState.RESOLVED)  # a drill key's: left out
        alert(session, pay, at(9, 7, 30), AlertState.OPEN)  # next week


def settings(**values: Any) -> PostmortemSettings:
    base: dict[str, Any] = {"digest_channel": "C0MANAGERS", "digest_time": "mon 09:00"}
    base["digest_timezone"] = PARIS
    return PostmortemSettings(**{**base, **values})


def digests(database: Database) -> list[Notification]:
    with database.session() as session:
        return list(session.scalars(select(Notification).where(Notification.kind == "weekly_digest")))


def test_the_digest_counts_the_week_in_local_days(database: Database) -> None:
    fixed_week(database)
    digest = build_digest(database, MONDAY, PARIS, now=SLOT)
    assert digest.week == "2026-W10"
    assert (digest.start, digest.end) == (at(1, 23), at(8, 23))
    assert (digest.incidents_opened, digest.incidents_resolved, digest.false_alarms) == (4, 2, 1)
    assert digest.contained == 4 and digest.median_contain_seconds == 45 * 60  # median of 30, 60, 10, 240 min
    assert (digest.alerts_opened, digest.alerts_false_positive, digest.alerts_acknowledged) == (3, 1, 2)
    assert digest.drills == 1
    assert [(t.team, t.count, t.keys, t.oldest_days) for t in digest.overdue] == [
        ("search", 2, ("search-a", "search-b"), 400 - 30)  # production keys: every 30 days
    ]
    assert digest.chart == DigestChartData(
        week="2026-W10",
        days=tuple(MONDAY + timedelta(days=i) for i in range(7)),
        incidents=(1, 0, 2, 1, 0, 0, 0),
        alerts=(2, 0, 0, 0, 0, 0, 1),
        contain_minutes=(135.0, None, 35.0, None, None, None, None),  # Monday: 30 and 240; Wednesday: 60, 10
    )
    assert [i.reference for i in digest.incidents] == ["INC-00005", "INC-00001", "INC-00002", "INC-00003",
                                                        "INC-00004"]  # fmt: skip
    data = digest_as_data(digest)
    assert data["median_contain"] == "45 min" and data["median_contain_minutes"] == 45.0
    assert (data["first_day"], data["last_day"]) == ("2026-03-02", "2026-03-08")
    assert digest_from_data(data) == digest.chart


def test_drills_are_counted_apart_and_never_named(database: Database) -> None:
    fixed_week(database)
    data = digest_as_data(build_digest(database, MONDAY, PARIS, now=SLOT))
    text = plain_markdown(data) + repr(data)
    assert "DRILL-" not in text and DRILL_KEY not in text
    assert "Drills run this week: 1" in plain_markdown(data)


def test_the_chart_is_a_deterministic_png() -> None:
    data = DigestChartData(
        "2026-W10", tuple(MONDAY + timedelta(days=i) for i in range(7)), (1, 0, 2, 1, 0, 0, 0),
        (2, 0, 0, 0, 0, 0, 1), (135.0, None, 35.0, None, None, None, None),
    )  # fmt: skip
    png = digest_chart(data)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and png == digest_chart(data)
    assert b"matplotlib" not in png.lower()
    quiet = digest_chart(DigestChartData("2026-W11", data.days, (0,) * 7, (0,) * 7, (None,) * 7))
    assert quiet.startswith(b"\x89PNG") and quiet != png


def test_the_slot_is_local_time() -> None:
    assert this_weeks_slot(at(4, 12), "mon 09:00", PARIS) == SLOT - timedelta(days=7)
    assert this_weeks_slot(at(9, 12), "fri 17:30", "UTC") == datetime(2026, 3, 13, 17, 30, tzinfo=UTC)


def test_the_job_posts_once_per_week_after_the_slot(database: Database) -> None:
    fixed_week(database)
    assert run_digest(database, SLOT - timedelta(minutes=1), settings()) is None  # 08:59 in Paris
    assert digests(database) == []
    assert run_digest(database, SLOT, settings()) == "2026-W10"
    assert run_digest(database, SLOT + timedelta(minutes=1), settings()) is None  # the next tick
    (row,) = digests(database)
    assert (row.dedupe_key, row.recipient) == ("digest:2026-W10", "C0MANAGERS")
    assert "2026-W10" in row.subject and "45 min" in row.body
    assert digest_from_data(row.facts["digest"]).incidents == (1, 0, 2, 1, 0, 0, 0)
    assert run_digest(database, SLOT + timedelta(days=7), settings()) == "2026-W11"
    assert [r.dedupe_key for r in digests(database)] == ["digest:2026-W10", "digest:2026-W11"]


def test_two_clocks_claim_a_week_once(database: Database) -> None:
    """Both clocks computed the digest before either enqueued it: the outbox's unique key lets one win."""
    fixed_week(database)
    digest = build_digest(database, MONDAY, PARIS, now=SLOT)
    assert claim_digest(database, digest, "C0MANAGERS", "first") is True
    assert claim_digest(database, digest, "C0MANAGERS", "second") is False
    assert run_digest(database, SLOT, settings()) is None
    (row,) = digests(database)
    assert row.body == "first" and row.dedupe_key == digest_dedupe("2026-W10")


@pytest.mark.parametrize("channel", [None, "", "   "])
def test_no_channel_no_digest(database: Database, channel: str | None) -> None:
    fixed_week(database)
    assert run_digest(database, SLOT, settings(digest_channel=channel)) is None
    assert digests(database) == []


def test_canaries_in_incident_titles_team_and_key_names_never_reach_the_digest(database: Database) -> None:
    """Rows written around keybot's redaction (a title, a team and a key name holding a secret): the
    digest's data, its Markdown, the outbox row and the Slack blocks still show none of it."""
    from bot.registry.models import Team
    from bot.slack.blocks.postmortems import digest_blocks
    from tests.fakes import canary_key, openai_legacy_key

    secret, short = canary_key(), openai_legacy_key()  # names hold at most 120 characters
    fixed_week(database)
    with database.session() as session:
        for row in session.scalars(select(Incident)):
            row.title = f"leak of {secret}"
            row.reason = secret
        for team in session.scalars(select(Team)):
            team.name = f"{team.name} {short}"
        for key in session.scalars(select(Key)):
            key.name = f"{key.name}-{short}"
    assert run_digest(database, SLOT + timedelta(minutes=1), settings()) is not None
    (row,) = digests(database)
    subject, blocks = digest_blocks(row.subject, row.body)
    for where, text in (
        ("outbox", f"{row.subject} {row.body} {row.facts}"),
        ("blocks", f"{subject} {blocks}"),
    ):
        assert secret not in text and secret[14:40] not in text and secret[-30:] not in text, where
        assert short not in text and short[3:20] not in text, where
