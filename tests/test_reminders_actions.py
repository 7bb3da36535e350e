"""Snooze, mark rotated and rotate now: permission-checked before any write, bounded, on the timeline;
the weekly escalation; and the posted message that is edited in place."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.access.policy import Actor, NotAllowed, Policy, Roster
from bot.db.session import Database
from bot.notifications.models import Notification
from bot.reminders.codec import escalation_from_facts, reminder_from_facts, reminder_json
from bot.reminders.delivery import posted_reminder, reminder_for, send_reminder
from bot.reminders.escalation import run_escalations
from bot.reminders.service import mark_rotated, record_posted, reminder_post, snooze, timeline
from bot.reminders.types import DueState
from bot.runbooks.refusals import RunRefused
from tests.reminders_helpers import (
    ADMIN,
    BACKUP,
    NOW,
    OWNER,
    STRANGER,
    add_key,
    add_team,
    counts,
    key_row,
    settings,
)  # fmt: skip

POLICY = Policy(Roster(admins=frozenset({ADMIN})))


def _overdue_key(database: Database) -> int:
    add_team(database, "payments")
    return add_key(database, "pay-prod", team="payments", rotated=NOW - timedelta(days=40))


@pytest.mark.parametrize("who", [OWNER, BACKUP, ADMIN])
def test_snooze_hides_the_key_until_it_ends_and_goes_on_the_timeline(database: Database, who: str) -> None:
    key = _overdue_key(database)
    state = snooze(
        database, key, who, days=7, reason="migrating", policy=POLICY, now=NOW, settings=settings()
    )
    assert state.state is DueState.SNOOZED and state.snoozed_until == NOW + timedelta(days=7)
    assert reminder_for(database, "payments", date(2026, 3, 4), NOW, settings=settings()) is None
    back = reminder_for(database, "payments", date(2026, 3, 12), NOW, settings=settings())
    assert back is not None and [k.key_id for k in back.keys] == [key]
    (event,) = timeline(database, key)
    assert (event["actor"], event["kind"], event["data"]["reason"]) == (who, "snoozed", "migrating")


def test_a_stranger_may_not_snooze_and_nothing_changes(database: Database) -> None:
    key = _overdue_key(database)
    before = counts(database)
    with pytest.raises(NotAllowed, match=r"may not snooze.*Who may: the key's owners <@U0OWNER01>"):
        snooze(database, key, STRANGER, days=7, reason="no", policy=POLICY, now=NOW, settings=settings())
    assert counts(database) == before


@pytest.mark.parametrize(("days", "reason"), [(0, "r"), (31, "r"), (3, "  ")])
def test_a_snooze_is_bounded_and_needs_a_reason(database: Database, days: int, reason: str) -> None:
    key = _overdue_key(database)
    before = counts(database)
    with pytest.raises(RunRefused, match="nothing changed"):
        snooze(database, key, OWNER, days=days, reason=reason, policy=POLICY, now=NOW, settings=settings())
    assert counts(database) == before


def test_mark_rotated_sets_the_rotation_ends_snoozes_and_records_who_said_so(database: Database) -> None:
    key = _overdue_key(database)
    snooze(database, key, OWNER, days=3, reason="soon", policy=POLICY, now=NOW, settings=settings())
    state = mark_rotated(
        database, key, BACKUP, rotated_on=date(2026, 3, 3), note="by hand in the dashboard",
        policy=POLICY, now=NOW, settings=settings(),
    )  # fmt: skip
    assert state.state is DueState.OK and state.snooze_count == 0 and state.snoozed_until is None
    assert key_row(database, key)[0] == datetime(2026, 3, 3, tzinfo=UTC)
    kinds = [(e["kind"], e["actor"]) for e in timeline(database, key)]
    assert kinds == [("marked_rotated", BACKUP), ("snoozed", OWNER)]


@pytest.mark.parametrize(
    ("who", "day", "refusal"),
    [
        (STRANGER, date(2026, 3, 3), "may not mark as rotated"),
        (OWNER, date(2026, 3, 5), "is in the future"),
        (OWNER, date(2024, 1, 1), "before pay-prod was registered"),
        (OWNER, date(2026, 1, 20), "already rotated later"),
    ],
)
def test_mark_rotated_refusals_change_nothing(database: Database, who: str, day: date, refusal: str) -> None:
    key = _overdue_key(database)
    before, row = counts(database), key_row(database, key)
    with pytest.raises(RunRefused, match=refusal):
        mark_rotated(
            database, key, who, rotated_on=day, note="n", policy=POLICY, now=NOW, settings=settings()
        )
    assert counts(database) == before and key_row(database, key) == row


def test_rotate_now_is_one_function_and_refused_for_a_stranger(database: Database) -> None:
    from bot.config import BUILTIN_RUNBOOKS
    from bot.reminders.service import start_rotation
    from bot.runbooks.definitions import load_runbooks

    key = _overdue_key(database)
    before = counts(database)
    with pytest.raises(NotAllowed, match="may not rotate pay-prod"):
        start_rotation(database, load_runbooks(BUILTIN_RUNBOOKS), key, Actor(STRANGER), policy=POLICY)
    assert counts(database) == before


def test_the_escalation_goes_to_the_manager_once_a_week(database: Database) -> None:
    add_team(database, "payments", manager="U0MANAGER1")
    late = add_key(database, "late", team="payments", rotated=NOW - timedelta(days=50))  # 20 days over
    add_key(database, "recent", team="payments", rotated=NOW - timedelta(days=35))  # 5 days over
    often = add_key(database, "often", team="payments", rotated=NOW - timedelta(days=40))
    for n in range(3):
        snooze(
            database,
            often,
            OWNER,
            days=1,
            reason=f"again {n}",
            policy=POLICY,
            now=NOW - timedelta(days=3 - n),
        )
    assert run_escalations(database, NOW, settings()) == ["escalation:payments:2026-W10"]
    assert run_escalations(database, NOW + timedelta(days=2), settings()) == [], "once per week"
    assert run_escalations(database, NOW + timedelta(days=5), settings()) == ["escalation:payments:2026-W11"]
    with database.session() as session:
        first = session.scalars(select(Notification).order_by(Notification.id)).first()
        assert first is not None and (first.kind, first.recipient) == ("rotation_escalation", "U0MANAGER1")
        escalation = escalation_from_facts(first.facts)
    assert [k.key_id for k in escalation.overdue] == [late]
    assert [(k.key_id, k.snooze_count) for k in escalation.snoozed_often] == [(often, 3)]
    assert [e["kind"] for e in timeline(database, late)] == ["escalated", "escalated"]


def test_the_posted_message_is_found_again_and_shows_keys_rotated_since(database: Database) -> None:
    key = _overdue_key(database)
    other = add_key(
        database, "pay-staging", team="payments", rotated=NOW - timedelta(days=80), environment="x"
    )
    notification_id = send_reminder(database, "payments", date(2026, 3, 4), NOW, settings=settings())
    assert notification_id
    assert send_reminder(database, "payments", date(2026, 3, 4), NOW, settings=settings()) is None
    with database.session() as session:
        row = session.get(Notification, notification_id)
        assert row is not None and row.dedupe_key == "reminder:payments:2026-03-04"
        enqueued = reminder_from_facts(row.facts)
    assert [k.key_id for k in enqueued.keys] == [other, key]
    assert reminder_json(enqueued) == reminder_json(
        reminder_from_facts({"reminder": reminder_json(enqueued)})
    )
    assert reminder_post(database, "payments", date(2026, 3, 4)) is None
    record_posted(database, "payments", date(2026, 3, 4), "C0PAYMENTS", "1700000000.000100")
    assert reminder_post(database, "payments", date(2026, 3, 4)) == ("C0PAYMENTS", "1700000000.000100")
    mark_rotated(database, key, OWNER, rotated_on=date(2026, 3, 4), note="", policy=POLICY, now=NOW)
    edited = posted_reminder(database, "payments", date(2026, 3, 4))
    assert edited is not None and edited.done_key_ids == frozenset({key})
    after = reminder_for(database, "payments", date(2026, 3, 5), NOW + timedelta(days=1), settings=settings())
    assert after is not None and [k.key_id for k in after.keys] == [other], (
        "a rotated key leaves the next one"
    )


def test_a_stored_timezone_zoneinfo_no_longer_knows_falls_back_to_the_default(database: Database) -> None:
    add_team(database, "mars", timezone="Mars/Olympus_Mons")  # written past the importer's validation
    key = add_key(database, "k", team="mars", rotated=NOW - timedelta(days=40))
    state = mark_rotated(database, key, OWNER, rotated_on=date(2026, 3, 4), note="", policy=POLICY, now=NOW)
    assert state.state is DueState.OK and key_row(database, key)[0] == datetime(2026, 3, 4, tzinfo=UTC)
    assert reminder_for(database, "mars", date(2026, 3, 4), NOW, settings=settings()) is None
