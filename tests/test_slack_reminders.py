"""The reminder's buttons and modals through signed requests on the real Bolt app, on SQLite and PostgreSQL.

Rotate now starts `rotate.yaml` or is refused with no run row; Snooze hides the key until the snooze ends
(a refused person changes no row); Mark rotated updates the registry and the key's timeline (refused: no
change); the day's message, posted through the outbox, is edited in place once the key is rotated.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.db.base import utcnow
from bot.notifications.models import Notification
from bot.registry.models import Key
from bot.reminders import service
from bot.reminders.delivery import reminder_for, schedule_of, send_reminder
from bot.reminders.due import key_due
from bot.reminders.escalation import enqueue_escalation
from bot.reminders.models import KeyEvent, KeySnooze
from bot.reminders.settings import reminder_settings
from bot.reminders.types import DueState, Escalation
from bot.runbooks.models import Run, RunStatus
from bot.slack import ids
from bot.slack.api import SlackAPI
from bot.slack.reminders import ReminderSender
from tests.slack_world import SlackWorld, serving
from tests.standins.slack_api import SlackStandin
from tests.standins.slack_payloads import (
    block_actions_body,
    event_callback_body,
    slash_command_body,
    view_submission_body,
)
from tests.world import World, unique_name

OWNER, OUTSIDER = "U0OWNER01", "U0OUTSID1"


@pytest.fixture
def sw(world: World, slack_standin: SlackStandin) -> Iterator[SlackWorld]:
    with serving(world, slack_standin) as served:
        yield served


def overdue_key(sw: SlackWorld) -> tuple[int, str, str]:
    """A key of its own team, last rotated 100 days ago (overdue under any default): id, name, team."""
    name = unique_name("due")
    key_id = sw.world.add_key(name, "staging", consumers=[])
    with sw.world.database.session() as session:
        key = session.get(Key, key_id)
        assert key is not None and key.team is not None
        key.created_at = key.last_rotated_at = utcnow() - timedelta(days=100)
        team = key.team.name
    return key_id, name, team


def reminder_day(sw: SlackWorld, team: str) -> date:
    """The team's latest reminder day (weekdays only, so not always today)."""
    latest = schedule_of(sw.world.database, team, reminder_settings()).latest_slot(utcnow())
    assert latest is not None
    return latest[0]


def post_reminder(sw: SlackWorld, team: str, day: date) -> tuple[str, str]:
    """The day's reminder, enqueued by the domain and delivered by the Slack sender: (channel, ts)."""
    assert send_reminder(sw.world.database, team, day, utcnow())
    sw.ctx.worker.deliver()
    where = service.reminder_post(sw.world.database, team, day)
    assert where is not None, "the sender records where it posted the reminder"
    return where


def click(sw: SlackWorld, action: str, key_id: int, user: str, day: date | None = None) -> str:
    """A click on the reminder message; its answers go to the response_url named after the user."""
    value = ids.reminder_ref(key_id, day).encode()
    return block_actions_body(action, value, user_id=user, response_url=sw.slack.response_url(user))


def answers(sw: SlackWorld, user: str) -> str:
    return json.dumps(sw.slack.response_posts.get(user, []))


def opened_views(sw: SlackWorld) -> list[dict[str, Any]]:
    views = [c.args["view"] for c in sw.slack.calls_to("views.open")]
    return [json.loads(v) if isinstance(v, str) else v for v in views]


def snooze_form(key_id: int, user: str, choice: str, custom: str | None, reason: str) -> str:
    state = {
        ids.SNOOZE_DAYS_BLOCK: {
            ids.SNOOZE_DAYS_ACTION: {"type": "radio_buttons", "selected_option": {"value": choice}}
        },
        ids.SNOOZE_CUSTOM_BLOCK: {ids.SNOOZE_CUSTOM_ACTION: {"type": "number_input", "value": custom}},
        ids.SNOOZE_REASON_BLOCK: {ids.SNOOZE_REASON_ACTION: {"type": "plain_text_input", "value": reason}},
    }
    meta = ids.reminder_ref(key_id).encode()
    return view_submission_body(ids.SNOOZE_MODAL, state, private_metadata=meta, user_id=user)


def rotated_form(key_id: int, user: str, on: str | None, note: str, day: date | None = None) -> str:
    state = {
        ids.ROTATED_ON_BLOCK: {ids.ROTATED_ON_ACTION: {"type": "datepicker", "selected_date": on}},
        ids.ROTATED_NOTE_BLOCK: {ids.ROTATED_NOTE_ACTION: {"type": "plain_text_input", "value": note}},
    }
    meta = ids.reminder_ref(key_id, day).encode()
    return view_submission_body(ids.MARK_ROTATED_MODAL, state, private_metadata=meta, user_id=user)


def rows(sw: SlackWorld, key_id: int) -> tuple[Any, ...]:
    """What a decision on the key could change: the registry row, runs, snoozes and the timeline."""
    with sw.world.database.session() as session:
        key = session.get(Key, key_id)
        assert key is not None
        count = select(func.count())
        return (
            key.last_rotated_at,
            session.scalar(count.select_from(Run).where(Run.key_id == key_id)),
            session.scalar(count.select_from(KeySnooze).where(KeySnooze.key_id == key_id)),
            session.scalar(count.select_from(KeyEvent).where(KeyEvent.key_id == key_id)),
        )


def errors_of(response: Any) -> dict[str, str]:
    body = response.json() or {}
    assert body.get("response_action") == "errors", body
    return dict(body["errors"])


# --- Rotate now ---------------------------------------------------------------------------------------


def test_rotate_now_starts_the_rotation_and_the_days_message_shows_it_done(sw: SlackWorld) -> None:
    key_id, name, team = overdue_key(sw)
    day = reminder_day(sw, team)
    channel, ts = post_reminder(sw, team, day)
    posted = sw.slack.message(channel, ts)
    assert (
        posted is not None and name in json.dumps(posted["blocks"]) and f"~{name}~" not in json.dumps(posted)
    )

    assert sw.post(click(sw, ids.REMINDER_ROTATE, key_id, OWNER, day)).status == 200
    sw.wait(lambda: "started" in answers(sw, OWNER), what="the clicker's answer")
    assert f"Rotation of {name} started (run `{sw.latest_run().id}`)" in answers(sw, OWNER)
    assert "|follow its progress>" in answers(sw, OWNER)  # a link to the run's live progress message
    assert sw.latest_run().runbook == "rotate" and sw.latest_run().key_id == key_id
    sw.wait(lambda: sw.run_status() is RunStatus.SUCCEEDED, what="the rotation")

    def edited() -> bool:
        message = sw.slack.message(channel, ts)
        return message is not None and f"~{name}~" in json.dumps(message["blocks"])

    sw.wait(edited, what="the day's reminder edited in place")
    assert any(c.args.get("ts") == ts for c in sw.slack.calls_to("chat.update"))
    assert len([m for m in sw.slack.messages(channel) if "Rotation reminder" in m.get("text", "")]) == 1


def test_rotate_now_is_refused_for_someone_who_may_not_and_starts_no_run(sw: SlackWorld) -> None:
    key_id, name, _ = overdue_key(sw)
    before = rows(sw, key_id)
    assert sw.post(click(sw, ids.REMINDER_ROTATE, key_id, OUTSIDER)).status == 200
    sw.wait(lambda: "not started" in answers(sw, OUTSIDER), what="the refusal")
    assert f"Rotation of {name} not started" in answers(sw, OUTSIDER)
    assert "owner" in answers(sw, OUTSIDER)  # it says who may
    assert rows(sw, key_id) == before


def test_a_garbled_button_is_answered_not_raised(sw: SlackWorld) -> None:
    body = block_actions_body(
        ids.REMINDER_ROTATE,
        '{"v":1,"kind":"run","id":"x"}',
        user_id=OWNER,
        response_url=sw.slack.response_url(OWNER),
    )
    assert sw.post(body).status == 200
    sw.wait(lambda: "older or unknown reminder" in answers(sw, OWNER), what="the answer")
    assert sw.run_status() is None


# --- Snooze -----------------------------------------------------------------------------------------------


def test_snooze_opens_the_form_and_hides_the_key_until_the_snooze_ends(sw: SlackWorld) -> None:
    key_id, name, team = overdue_key(sw)
    day = reminder_day(sw, team)
    assert sw.post(click(sw, ids.REMINDER_SNOOZE, key_id, OWNER, day)).status == 200
    sw.wait(lambda: bool(opened_views(sw)), what="the form")
    (view,) = opened_views(sw)
    assert view["callback_id"] == ids.SNOOZE_MODAL and name in json.dumps(view)
    assert ids.reminder_day(ids.ActionRef.decode(view["private_metadata"])) == day

    response = sw.post(snooze_form(key_id, OWNER, "7", None, "migrating vendors next week"))
    assert response.json() == {"response_action": "clear"}, response.text  # the modal closes
    now = utcnow()
    due = key_due(sw.world.database, key_id, now)
    assert due is not None and due.state is DueState.SNOOZED
    assert due.snoozed_until is not None and timedelta(days=6) < due.snoozed_until - now <= timedelta(days=7)
    assert reminder_for(sw.world.database, team, now.date(), now) is None  # hidden: nothing else is due
    later = now + timedelta(days=8)
    back = reminder_for(sw.world.database, team, later.date(), later)
    assert back is not None and [k.key_id for k in back.keys] == [key_id]  # back once the snooze ended
    timeline = service.timeline(sw.world.database, key_id)
    assert timeline[0]["kind"] == "snoozed" and timeline[0]["actor"] == OWNER
    assert timeline[0]["data"]["reason"] == "migrating vendors next week"


def test_a_custom_snooze_counts_its_days(sw: SlackWorld) -> None:
    key_id, _, _ = overdue_key(sw)
    response = sw.post(snooze_form(key_id, OWNER, "custom", "3", "waiting on a vendor"))
    assert response.json() == {"response_action": "clear"}, response.text
    due = key_due(sw.world.database, key_id, utcnow())
    assert due is not None and due.snoozed_until is not None
    assert timedelta(days=2) < due.snoozed_until - utcnow() <= timedelta(days=3)


@pytest.mark.parametrize(
    ("choice", "custom", "reason", "block"),
    [
        ("custom", None, "why", ids.SNOOZE_CUSTOM_BLOCK),
        ("custom", "0", "why", ids.SNOOZE_CUSTOM_BLOCK),
        ("custom", "31", "why", ids.SNOOZE_CUSTOM_BLOCK),
        ("custom", "1e3", "why", ids.SNOOZE_CUSTOM_BLOCK),
        ("7", None, "   ", ids.SNOOZE_REASON_BLOCK),
        ("99999", None, "why", ids.SNOOZE_DAYS_BLOCK),
    ],
)
def test_a_bad_snooze_form_gets_field_errors_and_changes_nothing(
    sw: SlackWorld, choice: str, custom: str | None, reason: str, block: str
) -> None:
    key_id, _, _ = overdue_key(sw)
    before = rows(sw, key_id)
    response = sw.post(snooze_form(key_id, OWNER, choice, custom, reason))
    assert list(errors_of(response)) == [block]
    assert rows(sw, key_id) == before


@pytest.mark.parametrize("action", [ids.REMINDER_SNOOZE, ids.REMINDER_MARK_ROTATED])
def test_someone_who_may_not_is_told_before_any_form_opens(sw: SlackWorld, action: str) -> None:
    key_id, name, _ = overdue_key(sw)
    assert sw.post(click(sw, action, key_id, OUTSIDER)).status == 200
    sw.wait(lambda: "Who may" in answers(sw, OUTSIDER), what="the refusal")
    assert name in answers(sw, OUTSIDER) and "owner" in answers(sw, OUTSIDER)
    assert opened_views(sw) == []


def test_snooze_is_refused_for_someone_who_may_not(sw: SlackWorld) -> None:
    key_id, _, _ = overdue_key(sw)
    before = rows(sw, key_id)
    response = sw.post(snooze_form(key_id, OUTSIDER, "7", None, "not my key"))
    why = errors_of(response)[ids.SNOOZE_REASON_BLOCK]
    assert "owner" in why  # names who may
    assert rows(sw, key_id) == before
    due = key_due(sw.world.database, key_id, utcnow())
    assert due is not None and due.state is DueState.OVERDUE


# --- Mark rotated -----------------------------------------------------------------------------------------


def test_mark_rotated_updates_the_registry_the_timeline_and_the_days_message(sw: SlackWorld) -> None:
    key_id, name, team = overdue_key(sw)
    day = reminder_day(sw, team)
    channel, ts = post_reminder(sw, team, day)
    assert sw.post(click(sw, ids.REMINDER_MARK_ROTATED, key_id, OWNER, day)).status == 200
    sw.wait(lambda: bool(opened_views(sw)), what="the form")
    (view,) = opened_views(sw)
    assert view["callback_id"] == ids.MARK_ROTATED_MODAL
    picker = next(b for b in view["blocks"] if b.get("block_id") == ids.ROTATED_ON_BLOCK)
    today = schedule_of(sw.world.database, team, reminder_settings()).local_date(utcnow())
    assert picker["element"]["initial_date"] == today.isoformat()

    on = today - timedelta(days=2)
    response = sw.post(rotated_form(key_id, OWNER, on.isoformat(), "rotated in the vendor console", day))
    assert response.json() == {"response_action": "clear"}, response.text
    with sw.world.database.session() as session:
        key = session.get(Key, key_id)
        assert key is not None and key.last_rotated_at is not None
        assert key.last_rotated_at.date() in (on, on - timedelta(days=1), on + timedelta(days=1))
    event = service.timeline(sw.world.database, key_id)[0]
    assert (event["kind"], event["actor"], event["data"]["rotated_on"]) == ("marked_rotated", OWNER, str(on))
    due = key_due(sw.world.database, key_id, utcnow())
    assert due is not None and due.days_overdue < 0

    def edited() -> bool:
        message = sw.slack.message(channel, ts)
        return message is not None and f"~{name}~" in json.dumps(message["blocks"])

    sw.wait(edited, what="the day's reminder edited in place")
    sw.wait(lambda: "Recorded" in json.dumps(sw.slack.messages(OWNER)), what="the confirmation DM")


def test_mark_rotated_is_refused_for_someone_who_may_not(sw: SlackWorld) -> None:
    key_id, _, _ = overdue_key(sw)
    before = rows(sw, key_id)
    response = sw.post(rotated_form(key_id, OUTSIDER, utcnow().date().isoformat(), "trust me"))
    assert "owner" in errors_of(response)[ids.ROTATED_ON_BLOCK]
    assert rows(sw, key_id) == before


@pytest.mark.parametrize(
    ("on", "note", "block"),
    [
        (None, "done", ids.ROTATED_ON_BLOCK),
        ("2999-01-01", "done", ids.ROTATED_ON_BLOCK),  # the future
        ("1999-01-01", "done", ids.ROTATED_ON_BLOCK),  # before the key was registered
        ("yesterday", "done", ids.ROTATED_ON_BLOCK),
        ("TODAY", "  ", ids.ROTATED_NOTE_BLOCK),
    ],
)
def test_a_bad_mark_rotated_form_gets_field_errors_and_changes_nothing(
    sw: SlackWorld, on: str | None, note: str, block: str
) -> None:
    key_id, _, _ = overdue_key(sw)
    before = rows(sw, key_id)
    when = utcnow().date().isoformat() if on == "TODAY" else on
    assert list(errors_of(sw.post(rotated_form(key_id, OWNER, when, note)))) == [block]
    assert rows(sw, key_id) == before


def test_a_form_for_a_key_that_is_gone_gets_an_error(sw: SlackWorld) -> None:
    assert list(errors_of(sw.post(snooze_form(99_999, OWNER, "7", None, "why")))) == [ids.SNOOZE_REASON_BLOCK]
    assert sw.post(click(sw, ids.REMINDER_SNOOZE, 99_999, OWNER)).status == 200
    sw.wait(lambda: "no longer active" in answers(sw, OWNER), what="the answer")
    assert opened_views(sw) == []


# --- delivery, App Home and /key-owner --------------------------------------------------------------------


def test_the_days_reminder_is_posted_with_its_buttons_once(sw: SlackWorld) -> None:
    key_id, name, team = overdue_key(sw)
    day = reminder_day(sw, team)
    channel, ts = post_reminder(sw, team, day)
    sw.ctx.worker.deliver()  # a second delivery pass posts nothing more
    posted = [m for m in sw.slack.messages(channel) if "Rotation reminder" in m.get("text", "")]
    assert [m["ts"] for m in posted] == [ts]
    actions = [e for b in posted[0]["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert [e["action_id"] for e in actions] == [
        ids.REMINDER_ROTATE,
        ids.REMINDER_SNOOZE,
        ids.REMINDER_MARK_ROTATED,
    ]
    assert {e["value"] for e in actions} == {ids.reminder_ref(key_id, day).encode()}
    assert f"<@{OWNER}>" in json.dumps(posted[0]["blocks"]) and name in posted[0]["text"] + json.dumps(posted)


def test_the_escalation_reaches_the_manager_as_a_dm_with_each_key(sw: SlackWorld) -> None:
    key_id, name, team = overdue_key(sw)
    due = key_due(sw.world.database, key_id, utcnow())
    assert due is not None
    escalation = Escalation(team, "U0MANAGER1", "2026-W48", (due,), ())
    with sw.world.database.session() as session:
        assert enqueue_escalation(session, escalation, utcnow())
    sw.ctx.worker.deliver()
    (dm,) = sw.slack.messages("U0MANAGER1")
    text = json.dumps(dm["blocks"])
    assert "Overdue key rotations" in text and name in text and f"<@{OWNER}>" in text
    assert f"overdue by *{due.days_overdue} days*" in text


def home_text(sw: SlackWorld, user: str) -> str:
    views = [c.args["view"] for c in sw.slack.calls_to("views.publish") if c.args.get("user_id") == user]
    return json.dumps(views[-1]) if views else ""


def test_app_home_and_key_owner_show_the_snooze_and_the_next_reminder(sw: SlackWorld) -> None:
    key_id, name, _ = overdue_key(sw)
    service.snooze(
        sw.world.database, key_id, OWNER, days=7, reason="vendor migration", policy=sw.ctx.runtime.policy
    )
    due = key_due(sw.world.database, key_id, utcnow())
    assert due is not None and due.snoozed_until is not None and due.next_reminder is not None
    until = due.snoozed_until.date().isoformat()

    assert (
        sw.post(event_callback_body({"type": "app_home_opened", "user": OWNER, "tab": "home"})).status == 200
    )
    sw.wait(lambda: name in home_text(sw, OWNER), what="App Home")
    assert f"snoozed until {until}" in home_text(sw, OWNER)
    assert f"next reminder {due.next_reminder.isoformat()}" in home_text(sw, OWNER)

    url = sw.slack.response_url("card")
    assert sw.post(slash_command_body("/key-owner", name, user_id=OWNER, response_url=url)).status == 200
    sw.wait(lambda: bool(sw.slack.response_posts.get("card")), what="the key card")
    card = json.dumps(sw.slack.response_posts["card"])
    assert f"snoozed until {until}" in card and f"next reminder {due.next_reminder.isoformat()}" in card


@pytest.mark.parametrize(
    ("kind", "facts", "run_id"),
    [
        ("channel", {"runbook": "revoke-replace-audit-notify", "team_channel": "C0TEAM"}, "run_1"),
        ("channel", {"runbook": "rotate", "team_channel": "C0TEAM", "drill": True}, "run_1"),
        ("owner_dm", {"runbook": "rotate", "team_channel": "C0TEAM"}, "run_1"),  # the channel one edits
        ("channel", {"runbook": "rotate", "team_channel": "C0TEAM"}, None),
    ],
)
def test_only_a_finished_real_rotation_edits_a_reminder(
    kind: str, facts: dict[str, Any], run_id: str | None
) -> None:
    """Revocations, drills and the other messages of a rotation leave reminders alone (no lookup, no edit)."""
    notification = Notification(kind=kind, recipient="C0TEAM", facts=facts, run_id=run_id)
    sender = ReminderSender(SlackAPI("xoxb-unused", base_url="http://127.0.0.1:9/"), None)  # type: ignore[arg-type]
    assert sender._rotated_key(notification) is None
