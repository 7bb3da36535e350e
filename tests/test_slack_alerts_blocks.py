"""Golden files for the anomaly pages: each escalation step (owner, backup, the team channel with the on-call
group, the manager), the page once acknowledged, marked expected or revoked; App Home and the key card with
a sparkline and an open alert. Plus Slack's limits, the buttons' values and hostile text.

Regenerate after an intended change with ``UPDATE_GOLDEN=1 pytest tests/test_slack_alerts_blocks.py``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.notifications.models import Notification
from bot.slack import ids, limits
from bot.slack.blocks.alert_page import AlertPage, page_from_facts
from bot.slack.blocks.alerts import alert_closed_blocks, alert_page_blocks
from bot.slack.blocks.home import app_home
from bot.slack.blocks.key_card import key_card_blocks
from bot.slack.blocks.messages import notification_blocks
from bot.slack.blocks.sparkline import KeyTraffic, sparkline
from bot.slack.blocks.text import blocks_to_text, view_to_text
from tests.test_slack_blocks import INJECTIONS, make_key, validate, walk_texts

GOLDEN = Path(__file__).parent / "golden" / "alerts"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"

NOW = datetime(2025, 3, 17, 14, 2, tzinfo=UTC)
FACTS: dict[str, Any] = {
    "alert_id": 42,
    "alert_version": 3,
    "key_id": 12,
    "key_name": "payments-openai-prod",
    "environment": "production",
    "step": "owner",
    "signals": ["requests", "new source address 203.0.113.7"],
    "observed": {"requests": 2140.0, "cost_usd": 3.25},
    "baseline": {"requests": 38.5, "cost_usd": 0.05},
    "score": 0.9731,
    "opened_at": NOW.isoformat(),
    "next_step": "backup",
    "next_recipient": "U0BACKUP1",
    "next_step_at": (NOW + timedelta(minutes=30)).isoformat(),
}
SPIKE = [40.0] * 300 + [2100.0, 2140.0] + [40.0] * 58


def page(**changes: Any) -> AlertPage:
    return dataclasses.replace(page_from_facts(FACTS), **changes)


def traffic() -> KeyTraffic:
    return KeyTraffic(12, 6, tuple(SPIKE), {"requests": 18_640.0, "tokens": 912_000.0, "cost_usd": 4.1})


CASES: dict[str, tuple[str, Callable[[], Any]]] = {
    "page_owner": ("message", lambda: alert_page_blocks(page(), sparkline(SPIKE))[1]),
    "page_backup": (
        "message",
        lambda: alert_page_blocks(
            page(
                step="backup",
                next_step="channel",
                next_recipient="C0PAYMENTS",
                next_step_at=NOW + timedelta(minutes=60),
            )
        )[1],
    ),
    "page_channel": (
        "message",
        lambda: alert_page_blocks(
            page(
                step="channel",
                mention="<!subteam^S0ONCALL>",
                next_step="manager",
                next_recipient=None,
                next_step_at=NOW + timedelta(minutes=90),
            )
        )[1],
    ),
    "page_manager": (
        "message",
        lambda: alert_page_blocks(page(step="manager", next_step=None, next_step_at=None))[1],
    ),
    "closed_acknowledged": (
        "message",
        lambda: alert_closed_blocks(page(state="acknowledged", acked_by="U0OWNER1", version=4))[1],
    ),
    "closed_expected": (
        "message",
        lambda: alert_closed_blocks(page(state="false_positive", acked_by="U0OWNER1", version=4))[1],
    ),
    "closed_revoked": (
        "message",
        lambda: alert_closed_blocks(
            page(state="acknowledged", acked_by="U0BACKUP1", run_id="run_7f3a", version=5)
        )[1],
    ),
    "key_card_traffic": (
        "message",
        lambda: key_card_blocks(make_key(12), NOW, usage=traffic(), alerts=[page()]),
    ),
    "home_alerts": (
        "home",
        lambda: app_home(
            "U0OWNER1",
            [make_key(12)],
            [],
            [],
            [],
            NOW,
            traffic={12: traffic()},
            alerts=[page(state="acknowledged", acked_by="U0BACKUP1")],
        ),
    ),
}


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
    # The shared validator knows user and channel mentions; the on-call group's is the one other we write.
    assert [p for p in validate(surface, payload) if "<!subteam^S0ONCALL> " not in p] == []


def test_the_page_says_what_was_seen_the_numbers_and_when_the_next_step_comes() -> None:
    text = json.dumps(alert_page_blocks(page())[1], ensure_ascii=False)
    assert "new source address 203.0.113.7" in text
    assert "*2,140* (baseline 38.5)" in text and "0.97 of 1" in text and "2025-03-17 14:02 UTC" in text
    assert "pages <@U0BACKUP1> at 2025-03-17 14:32 UTC unless acknowledged" in text
    channel = json.dumps(alert_page_blocks(page(step="channel", mention="<!subteam^S0ONCALL>"))[1])
    assert channel.count("<!subteam^S0ONCALL>") == 1


def test_the_three_buttons_carry_the_alert_and_the_version_only() -> None:
    (block,) = [b for b in alert_page_blocks(page())[1] if b["type"] == "actions"]
    found = [(e["action_id"], ids.ActionRef.decode(e["value"])) for e in block["elements"]]
    assert [a for a, _ in found] == [ids.ACK_ALERT, ids.EXPECTED_ALERT, ids.REVOKE_ALERT]
    assert {ids.alert_seen(ref) for _, ref in found} == {(42, 3)}
    assert all(ref.extra == {"v": "3"} for _, ref in found)
    assert "confirm" in block["elements"][2]  # revoking asks first


@pytest.mark.parametrize("state", ["acknowledged", "false_positive", "resolved"])
def test_an_answered_page_has_no_buttons_and_names_who_answered(state: str) -> None:
    blocks = alert_page_blocks(page(state=state, acked_by="U0OWNER1"))[1]
    assert not [b for b in blocks if b["type"] == "actions"]
    assert "<@U0OWNER1>" in json.dumps(blocks)


def test_the_outbox_row_renders_through_the_alert_renderer() -> None:
    row = Notification(kind="alert_page", recipient="U0OWNER1", subject="s", body="b", facts=FACTS)
    text, blocks = notification_blocks(row)
    assert text.startswith("🚨 payments-openai-prod (production)")
    assert [b["block_id"] for b in blocks if b["type"] == "actions"] == ["alert_actions"]
    garbled = Notification(kind="alert_page", recipient="U0", subject="s", body="b", facts={"alert_id": "x"})
    assert not [b for b in notification_blocks(garbled)[1] if b["type"] == "actions"]


def test_hostile_names_signals_and_mentions_cannot_ping_or_link() -> None:
    hostile = page(
        key_name=" ".join(INJECTIONS),
        environment=INJECTIONS[0],
        signals=tuple(INJECTIONS),
        step="channel",
        mention="<!channel>",
        next_recipient="<!here>",
    )
    for blocks in (alert_page_blocks(hostile)[1], alert_closed_blocks(hostile)[1]):
        text = json.dumps(list(walk_texts(blocks, "mrkdwn")))
        for injection in INJECTIONS:
            assert injection not in text


def test_facts_from_a_stranger_are_bounded_and_never_crash() -> None:
    facts = {**FACTS, "signals": ["x" * 10_000] * 500, "observed": {"m": float("nan"), "r": "1e309"}}
    facts["opened_at"] = "not a date"
    got = page_from_facts(facts)
    assert len(got.signals) == 10 and got.observed == {} and got.opened_at is None
    blocks = alert_page_blocks(got)[1]
    assert validate("message", {"text": "x", "blocks": blocks}) == []
    with pytest.raises(ValueError, match="no alert"):
        page_from_facts({"alert_id": True})


def test_sparkline() -> None:
    assert sparkline([]) == ""
    assert sparkline([0, 0, 0]) == "▁▁▁"
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == "▁▂▃▄▅▆▇█"
    assert sparkline([float("nan"), -5, 7]) == "▁▁█"
    long = sparkline(SPIKE)
    assert len(long) == 60 and long.count("█") == 1  # a one-minute spike stays visible when squeezed
    assert len(sparkline(list(range(10)), width=4)) == 4


def test_limits_hold_for_many_alerts_on_home() -> None:
    many = [page(alert_id=i, key_name=f"key-{i}") for i in range(1, 200)]
    view = app_home("U0OWNER1", [make_key(12)], [], [], [], NOW, alerts=many)
    assert validate("home", view) == []
    assert len(view["blocks"]) <= limits.HOME_BLOCKS
    assert "189 more not shown" in json.dumps(view)
