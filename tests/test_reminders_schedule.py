"""The daily reminder: one per team and local day, whatever the timezone, DST, restarts or clocks."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

from bot.config import Settings
from bot.db.base import utcnow
from bot.db.session import Database
from bot.notifications.models import Notification
from bot.reminders.codec import reminder_from_facts
from bot.reminders.jobs import run_reminders
from bot.reminders.schedule import TeamSchedule
from bot.runtime import Runtime
from bot.scheduling import leader
from bot.scheduling.clock import Clock
from tests.reminders_helpers import add_key, add_team, reminder_rows, settings


def tick(database: Database, start: datetime, end: datetime, step: timedelta = timedelta(minutes=15)) -> None:
    """The clock's job every `step` from `start` to `end` (a clock that is up the whole time)."""
    moment = start
    while moment <= end:
        run_reminders(database, moment, settings())
        moment += step


def days_of(database: Database, team: str) -> list[str]:
    return [key.rsplit(":", 1)[1] for key, _to in reminder_rows(database) if key.split(":")[1] == team]


def notes(database: Database) -> dict[str, str | None]:
    with database.session() as session:
        rows = session.scalars(select(Notification).where(Notification.kind == "rotation_reminder")).all()
        return {n.dedupe_key: reminder_from_facts(n.facts).late_note for n in rows}


def test_two_teams_in_two_timezones_get_one_reminder_per_local_weekday(database: Database) -> None:
    add_team(database, "paris", timezone="Europe/Paris", channel="C0PARIS")
    add_team(database, "tokyo", timezone="Asia/Tokyo", channel="C0TOKYO", reminder_time="10:00")
    created = datetime(2025, 1, 1, tzinfo=UTC)
    add_key(database, "p", team="paris", created=created)
    add_key(database, "t", team="tokyo", created=created)
    tick(database, datetime(2026, 3, 1, 18, tzinfo=UTC), datetime(2026, 3, 9, 2, tzinfo=UTC))
    weekdays = ["2026-03-02", "2026-03-03", "2026-03-04", "2026-03-05", "2026-03-06"]
    # The first tick finds Friday's slot unsent (the clock was not running then): it is sent once, late.
    assert days_of(database, "paris") == ["2026-02-27", *weekdays]
    assert days_of(database, "tokyo") == [
        "2026-02-27",
        *weekdays,
        "2026-03-09",
    ]  # Monday 10:00 in Tokyo is Monday 01:00 UTC, before Paris's Monday
    assert {to for _key, to in reminder_rows(database)} == {"C0PARIS", "C0TOKYO"}
    late = {key for key, note in notes(database).items() if note is not None}
    assert late == {"reminder:paris:2026-02-27", "reminder:tokyo:2026-02-27"}, "a clock that is up is on time"


def test_dst_forward_and_back_neither_doubles_nor_skips_a_day(database: Database) -> None:
    add_team(database, "paris", timezone="Europe/Paris", reminder_days="daily", reminder_time="02:30")
    add_team(database, "newyork", timezone="America/New_York", reminder_days="daily", reminder_time="01:30")
    created = datetime(2025, 1, 1, tzinfo=UTC)
    add_key(database, "p", team="paris", created=created)
    add_key(database, "n", team="newyork", created=created)
    for start, end in [
        (datetime(2026, 3, 27, tzinfo=UTC), datetime(2026, 3, 31, tzinfo=UTC)),  # both spring forward
        (datetime(2026, 10, 23, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC)),  # both fall back
    ]:
        tick(database, start, end, timedelta(minutes=30))
    paris, newyork = days_of(database, "paris"), days_of(database, "newyork")

    def days(first: date, last: date) -> list[str]:
        return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]

    # Each stretch starts at 00:00 UTC, before that day's slot: the day before is sent late, once.
    expected = days(date(2026, 3, 26), date(2026, 3, 30)) + days(date(2026, 10, 22), date(2026, 11, 2))
    assert paris == expected
    assert newyork == expected
    assert len(set(notes(database))) == len(notes(database))


def test_a_slot_inside_the_spring_gap_happens_once_just_after_it() -> None:
    paris = TeamSchedule(
        "paris", None, None, "Europe/Paris", datetime(2026, 1, 1, 2, 30).time(), frozenset(range(7))
    )
    assert paris.slot(date(2026, 3, 29)) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # 03:30 CEST
    assert paris.slot(date(2026, 10, 25)) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # the first 02:30


def test_a_slot_missed_while_the_clock_was_down_is_sent_once_late_with_a_note(database: Database) -> None:
    add_team(database, "paris", timezone="Europe/Paris")
    add_key(database, "p", team="paris", created=datetime(2025, 1, 1, tzinfo=UTC))
    tick(database, datetime(2026, 3, 2, 7, tzinfo=UTC), datetime(2026, 3, 2, 12, tzinfo=UTC))  # Monday, up
    # Down from Tuesday 06:00 to Thursday 11:00 UTC: only Thursday's slot (08:30 UTC) is sent, late.
    tick(database, datetime(2026, 3, 5, 11, tzinfo=UTC), datetime(2026, 3, 6, 12, tzinfo=UTC))
    assert days_of(database, "paris") == ["2026-02-27", "2026-03-02", "2026-03-05", "2026-03-06"]
    late = notes(database)
    assert late["reminder:paris:2026-03-05"] == "sent late: keybot's clock was down at 09:30"
    assert late["reminder:paris:2026-03-02"] is None and late["reminder:paris:2026-03-06"] is None


def test_nothing_due_sends_nothing_and_a_key_due_later_that_day_waits_for_the_next(
    database: Database,
) -> None:
    add_team(database, "paris", timezone="Europe/Paris")
    # Due (30 days, horizon 7) from Monday 2026-03-02 12:00 UTC: after Monday's 08:30 UTC slot.
    add_key(database, "p", team="paris", created=datetime(2026, 2, 7, 12, tzinfo=UTC))
    tick(database, datetime(2026, 3, 2, 7, tzinfo=UTC), datetime(2026, 3, 3, 12, tzinfo=UTC))
    assert days_of(database, "paris") == ["2026-03-03"]


def test_running_the_job_again_or_on_two_threads_never_posts_twice(database: Database) -> None:
    add_team(database, "paris", timezone="Europe/Paris")
    add_key(database, "p", team="paris", created=datetime(2025, 1, 1, tzinfo=UTC))
    add_key(database, "teamless", created=datetime(2025, 1, 1, tzinfo=UTC))
    now = datetime(2026, 3, 2, 10, tzinfo=UTC)
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: run_reminders(database, now, settings()), range(2)))
    assert sorted(r for result in results for r in result) == ["*:2026-03-02", "paris:2026-03-02"]
    assert run_reminders(database, now + timedelta(minutes=1), settings()) == []
    assert sorted(reminder_rows(database)) == [
        ("reminder:*:2026-03-02", "C0FALLBACK"),
        ("reminder:paris:2026-03-02", "C0PARIS"),
    ]


def test_a_restarted_clock_and_a_second_clock_never_post_twice(
    database: Database, monkeypatch: object
) -> None:
    import pytest

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    monkeypatch.setenv("KEYBOT_REMINDER_FALLBACK_CHANNEL", "C0FALLBACK")
    add_team(database, "everyday", reminder_days="daily", reminder_time="00:00")
    add_key(database, "k", team="everyday", created=utcnow() - timedelta(days=400))
    runtime = Runtime(Settings(database_url=database.url))
    first, second = Clock(runtime, sender=None), Clock(runtime, sender=None)
    results = first.run_once()
    assert results is not None and results["rotation_reminders"] == [f"everyday:{utcnow().date()}"]
    restarted = Clock(runtime, sender=None)
    assert restarted.run_once() is not None and second.run_once() is not None
    leader.release(database, "clock", second.holder)
    assert [key for key, _to in reminder_rows(database)] == [f"reminder:everyday:{utcnow().date()}"]
    runtime.database.dispose()
