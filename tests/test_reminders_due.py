"""Rotation policy and due computation with a frozen clock: overdue, due soon, snoozed, never rotated,
team-less, drills and revoked keys, oldest first."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.config import ConfigError
from bot.db.session import Database
from bot.registry.models import KeyStatus
from bot.reminders.due import due_keys, key_due
from bot.reminders.policy import rotation_days_for
from bot.reminders.settings import ReminderSettings, parse_rotation_days
from bot.reminders.types import DueState
from tests.reminders_helpers import NOW, add_key, add_team, settings


def test_rotation_days_key_then_team_then_environment() -> None:
    defaults = parse_rotation_days("production=30,default=60")
    assert rotation_days_for(10, 20, "production", defaults) == 10
    assert rotation_days_for(None, 20, "production", defaults) == 20
    assert rotation_days_for(None, None, "production", defaults) == 30
    assert rotation_days_for(None, None, "staging", defaults) == 60
    assert parse_rotation_days("production=7") == {"production": 7, "default": 60}


@pytest.mark.parametrize("bad", ["production", "production=x", "production=0", "=5"])
def test_a_malformed_rotation_setting_is_one_line_naming_the_variable(
    bad: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.reminders.settings import load_reminder_settings

    monkeypatch.setenv("KEYBOT_ROTATION_DAYS", bad)
    with pytest.raises(ConfigError, match=r"^invalid configuration: KEYBOT_ROTATION_DAYS: ") as error:
        load_reminder_settings()
    assert "\n" not in str(error.value)


def test_the_database_applies_the_same_policy(database: Database) -> None:
    add_team(database, "payments", rotation_days=20)
    own = add_key(database, "own", team="payments", rotation_days=5, rotated=NOW - timedelta(days=6))
    team = add_key(database, "team", team="payments", rotated=NOW - timedelta(days=6))
    prod = add_key(database, "prod", rotated=NOW - timedelta(days=6))
    staging = add_key(database, "staging", environment="staging", rotated=NOW - timedelta(days=6))
    by_id = {k.key_id: k for k in due_keys(database, NOW, settings=settings())}
    assert [by_id[i].rotation_days for i in (own, team, prod, staging)] == [5, 20, 30, 60]
    assert by_id[own].state is DueState.OVERDUE and by_id[own].days_overdue == 1
    assert by_id[team].state is DueState.OK and by_id[team].days_overdue == -14


def test_states_with_a_frozen_clock_oldest_due_first(database: Database) -> None:
    add_team(database, "payments")
    overdue = add_key(database, "overdue", team="payments", rotated=NOW - timedelta(days=40))
    soon = add_key(database, "soon", team="payments", rotated=NOW - timedelta(days=27))
    fine = add_key(database, "fine", team="payments", rotated=NOW - timedelta(days=2))
    never = add_key(database, "never", team="payments", created=NOW - timedelta(days=100))
    teamless = add_key(database, "teamless", rotated=NOW - timedelta(days=35))
    add_key(database, "gone", status=KeyStatus.REVOKED, created=NOW - timedelta(days=500))
    add_key(database, "drill-copy", drill=True, created=NOW - timedelta(days=500))
    keys = due_keys(database, NOW, horizon_days=7, settings=settings())
    assert [k.key_id for k in keys] == [never, overdue, teamless, soon]
    state = {k.key_id: k for k in keys}
    assert state[never].never_rotated and state[never].counted_from == NOW - timedelta(days=100)
    assert state[never].days_overdue == 70
    assert state[overdue].state is DueState.OVERDUE and not state[overdue].never_rotated
    assert state[soon].state is DueState.DUE_SOON and state[soon].days_overdue == -3
    assert state[teamless].team is None
    assert state[overdue].owners == ("U0OWNER01",)
    assert fine not in state
    assert [k.key_id for k in due_keys(database, NOW, team="*", horizon_days=7, settings=settings())] == [
        teamless
    ]
    assert {k.key_id for k in due_keys(database, NOW, team="payments", settings=settings())} == {
        overdue, soon, fine, never,
    }  # fmt: skip


def test_a_snoozed_key_is_snoozed_until_the_snooze_ends_and_counts_since_the_rotation(
    database: Database,
) -> None:
    from bot.reminders.models import KeySnooze

    add_team(database, "payments")
    key = add_key(database, "k", team="payments", rotated=NOW - timedelta(days=40))
    with database.session() as session:
        session.add(KeySnooze(key_id=key, until=NOW + timedelta(days=3), reason="r", by="U1", at=NOW))
        session.add(KeySnooze(key_id=key, until=NOW, reason="old", by="U1", at=NOW - timedelta(days=2)))
        session.add(KeySnooze(key_id=key, until=NOW, reason="before", by="U1", at=NOW - timedelta(days=50)))
    state = key_due(database, key, NOW, settings=settings())
    assert state is not None and state.state is DueState.SNOOZED
    assert state.snoozed_until == NOW + timedelta(days=3) and state.snooze_count == 2
    assert state.next_reminder is not None and state.next_reminder.isoformat() == "2026-03-09"
    later = key_due(database, key, NOW + timedelta(days=3, hours=1), settings=settings())
    assert later is not None and later.state is DueState.OVERDUE and later.snoozed_until is None


def test_next_reminder_is_the_next_weekday_slot_in_the_team_timezone(database: Database) -> None:
    add_team(database, "tokyo", timezone="Asia/Tokyo", reminder_time="09:30")
    key = add_key(database, "k", team="tokyo", rotated=NOW - timedelta(days=40))
    state = key_due(database, key, NOW, settings=settings())  # Wed 12:00 UTC = Wed 21:00 in Tokyo
    assert state is not None and state.next_reminder is not None
    assert state.next_reminder.isoformat() == "2026-03-05"


def test_settings_defaults() -> None:
    s = ReminderSettings()
    assert s.rotation_defaults() == {"production": 30, "default": 60}
    assert (s.horizon_days, s.escalate_after_days, s.max_snooze_days) == (7, 14, 30)
