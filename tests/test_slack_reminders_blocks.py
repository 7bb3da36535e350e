"""Golden files for the rotation reminder surfaces, with a frozen clock: due, overdue, snoozed, rotated
(done), never-rotated and team-less keys; the manager's escalation DM; both modals. Plus Slack's limits.

Regenerate after an intended change with ``UPDATE_GOLDEN=1 pytest tests/test_slack_reminders_blocks.py``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.reminders.types import DueKey, DueState, Escalation, Reminder
from bot.slack import ids, limits
from bot.slack.blocks.home import app_home
from bot.slack.blocks.key_card import key_card_blocks
from bot.slack.blocks.reminders import (
    escalation_blocks,
    mark_rotated_modal,
    reminder_blocks,
    snooze_modal,
    state_text,
)
from bot.slack.blocks.text import blocks_to_text, view_to_text
from tests.test_slack_blocks import INJECTIONS, make_key, validate, walk_texts

GOLDEN = Path(__file__).parent / "golden" / "reminders"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"

NOW = datetime(2025, 3, 17, 8, 30, tzinfo=UTC)  # Monday 09:30 in Europe/Berlin (CET)
TODAY = date(2025, 3, 17)
TZ = "Europe/Berlin"


def due_key(
    key_id: int,
    name: str,
    days_overdue: int,
    *,
    environment: str = "production",
    team: str | None = "payments",
    owners: tuple[str, ...] = ("U0OWNER1", "U0OWNER2"),
    rotation_days: int = 30,
    never_rotated: bool = False,
    state: DueState | None = None,
    snoozed_until: datetime | None = None,
    snooze_count: int = 0,
) -> DueKey:
    due_at = NOW - timedelta(days=days_overdue)
    if state is None:
        state = DueState.OVERDUE if days_overdue > 0 else DueState.DUE_SOON
    return DueKey(
        key_id=key_id,
        name=name,
        environment=environment,
        team=team,
        owners=owners,
        rotation_days=rotation_days,
        counted_from=due_at - timedelta(days=rotation_days),
        never_rotated=never_rotated,
        due_at=due_at,
        days_overdue=days_overdue,
        state=state,
        snoozed_until=snoozed_until,
        snooze_count=snooze_count,
        next_reminder=date(2025, 3, 18),
    )


OVERDUE = due_key(12, "payments-openai-prod", 21)
NEVER = due_key(14, "payments-stripe-legacy", 9, never_rotated=True, owners=())
DUE_TODAY = due_key(15, "payments-openai-batch", 0)
DUE_SOON = due_key(13, "payments-openai-staging", -5, environment="staging", rotation_days=60)
ROTATED = due_key(16, "payments-vault-token", 3)
SNOOZED = due_key(
    17,
    "payments-sendgrid",
    18,
    state=DueState.SNOOZED,
    snoozed_until=datetime(2025, 3, 24, 8, 30, tzinfo=UTC),
    snooze_count=3,
)
TEAMLESS = due_key(40, "orphan-openai-prod", 45, team=None, owners=("U0ORPHAN",), never_rotated=True)


def team_reminder(**changes: Any) -> Reminder:
    base = Reminder(
        team="payments",
        channel="C0PAYMENTS",
        local_date=TODAY,
        timezone=TZ,
        keys=(OVERDUE, NEVER, SNOOZED, ROTATED, DUE_TODAY, DUE_SOON),
    )
    return dataclasses.replace(base, **changes)


def escalation() -> Escalation:
    return Escalation(
        team="payments",
        manager="U0MANAGER",
        week="2025-W12",
        overdue=(OVERDUE, SNOOZED),
        snoozed_often=(SNOOZED,),
    )


Build = Callable[[], Any]
CASES: dict[str, tuple[str, Build]] = {
    "reminder": ("message", lambda: reminder_blocks(team_reminder())),
    "reminder_done": ("message", lambda: reminder_blocks(team_reminder(done_key_ids=frozenset({16, 12})))),
    "reminder_late": (
        "message",
        lambda: reminder_blocks(
            team_reminder(keys=(OVERDUE,), late_note="Sent late: keybot's clock was down at 09:30.")
        ),
    ),
    "reminder_teamless": (
        "message",
        lambda: reminder_blocks(
            Reminder(team=None, channel="C0SECURITY", local_date=TODAY, timezone="UTC", keys=(TEAMLESS,))
        ),
    ),
    "escalation": ("message", lambda: escalation_blocks(escalation())),
    "modal_snooze": ("modal", lambda: snooze_modal(SNOOZED, max_days=30, day=TODAY)),
    "modal_mark_rotated": ("modal", lambda: mark_rotated_modal(NEVER, TODAY, day=TODAY)),
    "key_card_snoozed": ("message", lambda: key_card_blocks(make_key(17), NOW, rotation=SNOOZED)),
    "home_rotation": ("home", lambda: home_with_rotation()),
}


def home_with_rotation() -> dict[str, Any]:
    """App Home's due list with the reminders' view: one key snoozed, one overdue with its next reminder."""
    snoozed, overdue = make_key(17, "payments-sendgrid"), make_key(12)
    due = [(snoozed, "overdue by 18 day(s)"), (overdue, "overdue by 21 day(s)")]
    return app_home("U0OWNER1", [overdue, snoozed], due, [], [], NOW, rotation={17: SNOOZED, 12: OVERDUE})


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"missing golden {path}; run with UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs; UPDATE_GOLDEN=1 if intended"


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str) -> None:
    surface, build = CASES[name]
    data = build()
    check_golden(f"{name}.json", json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    text, buttons = blocks_to_text(data) if surface == "message" else view_to_text(data)
    listing = "".join(f"[{b.number}] {b.action_id} {b.value} {b.label}\n" for b in buttons)
    check_golden(f"{name}.txt", text + ("\nbuttons:\n" + listing if buttons else ""))


def test_no_stray_golden_files() -> None:
    expected = {f"{n}.{ext}" for n in CASES for ext in ("json", "txt")}
    assert {p.name for p in GOLDEN.glob("*")} - expected == set()


@pytest.mark.parametrize("name", sorted(CASES))
def test_within_slack_limits(name: str) -> None:
    surface, build = CASES[name]
    data = build()
    payload = {"text": "x", "blocks": data} if surface == "message" else data
    # The shared validator predates date pickers and number inputs; both carry no text to limit.
    known = ("unexpected element datepicker", "unexpected element number_input")
    assert [p for p in validate(surface, payload) if not p.endswith(known)] == []


def buttons_of(blocks: list[dict[str, Any]]) -> list[tuple[str, ids.ActionRef]]:
    return [
        (e["action_id"], ids.ActionRef.decode(e["value"]))
        for b in blocks
        if b["type"] == "actions"
        for e in b["elements"]
    ]


def test_done_and_snoozed_keys_have_no_buttons_and_the_others_carry_key_and_day() -> None:
    found = buttons_of(reminder_blocks(team_reminder(done_key_ids=frozenset({16}))))
    assert {ref.id for _, ref in found} == {"12", "14", "15", "13"}
    assert {ids.reminder_day(ref) for _, ref in found} == {TODAY}
    assert [a for a, ref in found if ref.id == "12"] == [
        ids.REMINDER_ROTATE,
        ids.REMINDER_SNOOZE,
        ids.REMINDER_MARK_ROTATED,
    ]


def test_five_hundred_keys_stay_within_fifty_blocks_and_say_how_many_more() -> None:
    many = tuple(due_key(1000 + i, f"bulk-key-{i:03d}", 100 - i % 90) for i in range(500))
    blocks = reminder_blocks(team_reminder(keys=many))
    assert validate("message", {"text": "x", "blocks": blocks}) == []
    assert len(blocks) <= limits.MESSAGE_BLOCKS
    assert len(buttons_of(blocks)) == 3 * 20
    text = json.dumps(blocks)
    assert "and 480 more" in text and "bulk-key-020" in text
    assert blocks[-1]["block_id"] == "reminder_footer"


def test_names_and_owners_from_the_registry_cannot_ping_or_link() -> None:
    hostile = due_key(50, " ".join(INJECTIONS), 3, team=INJECTIONS[0], owners=("<!channel>", "U0OK"))
    for blocks in (
        reminder_blocks(team_reminder(team=INJECTIONS[0], keys=(hostile,))),
        escalation_blocks(dataclasses.replace(escalation(), team=INJECTIONS[1], overdue=(hostile,))),
    ):
        text = json.dumps(list(walk_texts(blocks, "mrkdwn")))
        for injection in INJECTIONS:
            assert injection not in text
        assert "<@U0OK>" in text


def test_state_text_for_every_state() -> None:
    assert state_text(OVERDUE) == "🔴 overdue by 21 days (due 2025-02-24)"
    assert state_text(DUE_TODAY) == "🟠 due today (2025-03-17)"
    assert state_text(DUE_SOON) == "🟡 due in 5 days (2025-03-22)"
    assert state_text(SNOOZED).startswith("💤 snoozed until 2025-03-24 (3rd snooze in a row)")
