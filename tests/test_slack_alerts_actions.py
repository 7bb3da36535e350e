"""The anomaly page through the real Bolt app with signed requests, on SQLite and PostgreSQL: the owner's DM
with its chart uploaded into the thread; Acknowledge, Expected and Revoke now by the owner (the page is
edited: who answered, no buttons); a stranger and a stale page are refused with no row changed; App Home
shows the key's traffic sparkline and the open alert.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.alerts.escalation import run_escalations
from bot.alerts.opening import raise_alerts
from bot.alerts.types import AlertState
from bot.db.base import utcnow
from bot.notifications.models import Notification
from bot.runbooks.models import Run
from bot.slack import ids
from bot.slack.alerts import POSTED
from bot.usage.service import record_lines
from bot.usage.types import UsageLine
from tests.alerts_helpers import alert_row, finding, settings
from tests.slack_world import SlackWorld, serving
from tests.standins.slack_api import SlackStandin
from tests.standins.slack_payloads import block_actions_body, event_callback_body, slash_command_body
from tests.world import World, unique_name

OWNER, STRANGER = "U0OWNER01", "U0STRANGE"


@pytest.fixture
def sw(world: World, slack_standin: SlackStandin) -> Iterator[SlackWorld]:
    with serving(world, slack_standin) as served:
        yield served


def paged(sw: SlackWorld) -> tuple[int, int, str, str]:
    """A live key with an open alert whose owner page was delivered: (key id, alert id, channel, ts)."""
    key_id = sw.world.add_key(unique_name("hot"), "staging", consumers=[])
    now = utcnow()
    (alert_id,) = raise_alerts(sw.world.database, [finding(key_id, minute=now)], now, settings())
    sw.ctx.worker.deliver()
    with sw.world.database.session() as session:
        facts = session.scalars(
            select(Notification.facts).where(
                Notification.kind == "alert_page", Notification.recipient == OWNER
            )
        ).one()
    where = facts[POSTED]
    return key_id, alert_id, where["channel"], where["ts"]


def click(
    sw: SlackWorld, action: str, alert_id: int, version: int, user: str, where: tuple[str, str]
) -> None:
    value = ids.alert_ref(alert_id, version).encode()
    body = block_actions_body(
        action, value, user_id=user, channel_id=where[0], message_ts=where[1],
        response_url=sw.slack.response_url(user),
    )  # fmt: skip
    assert sw.post(body).status == 200


def page_blocks(sw: SlackWorld, channel: str, ts: str) -> list[dict[str, Any]]:
    message = sw.slack.message(channel, ts)
    assert message is not None
    return list(message["blocks"])


def has_buttons(blocks: list[dict[str, Any]]) -> bool:
    return any(b["type"] == "actions" for b in blocks)


def answers(sw: SlackWorld, user: str) -> str:
    return json.dumps(sw.slack.response_posts.get(user, []))


def test_the_owner_is_paged_with_the_chart_in_the_pages_thread(sw: SlackWorld) -> None:
    _, _, channel, ts = paged(sw)
    blocks = page_blocks(sw, channel, ts)
    assert has_buttons(blocks) and "Unusual traffic" in json.dumps(blocks)
    (upload,) = sw.slack.calls_to("files.completeUploadExternal")
    assert (upload.args["channel_id"], upload.args["thread_ts"]) == (channel, ts)
    (chart,) = sw.slack.files()
    assert chart["data"].startswith(b"\x89PNG") and chart["name"] == "chart.png"
    assert [m.get("subtype") for m in sw.slack.messages(channel)] == [None, "file_share"]


def test_a_failed_chart_upload_still_delivers_the_page(sw: SlackWorld) -> None:
    sw.slack.inject("files.getUploadURLExternal", "ratelimited_forever")
    _, _, channel, ts = paged(sw)
    assert has_buttons(page_blocks(sw, channel, ts))
    with sw.world.database.session() as session:
        statuses = session.scalars(select(Notification.status).where(Notification.kind == "alert_page")).all()
    assert {s.value for s in statuses} == {"sent"}


@pytest.mark.parametrize(
    ("action", "state", "says"),
    [
        (ids.ACK_ALERT, AlertState.ACKNOWLEDGED, f"Acknowledged by <@{OWNER}>"),
        (ids.EXPECTED_ALERT, AlertState.FALSE_POSITIVE, f"Marked expected by <@{OWNER}>"),
    ],
)
def test_the_owner_answers_and_the_page_shows_who_without_buttons(
    sw: SlackWorld, action: str, state: AlertState, says: str
) -> None:
    _, alert_id, channel, ts = paged(sw)
    click(sw, action, alert_id, 1, OWNER, (channel, ts))
    sw.wait(lambda: not has_buttons(page_blocks(sw, channel, ts)), what="the page edited")
    assert alert_row(sw.world.database, alert_id)["state"] is state
    assert says in json.dumps(page_blocks(sw, channel, ts))


def test_revoke_now_starts_the_emergency_run(sw: SlackWorld) -> None:
    key_id, alert_id, channel, ts = paged(sw)
    click(sw, ids.REVOKE_ALERT, alert_id, 1, OWNER, (channel, ts))
    sw.wait(lambda: "Emergency revocation started" in answers(sw, OWNER), what="the run started")
    run = sw.latest_run()
    assert (run.key_id, run.mode) == (key_id, "emergency")
    assert alert_row(sw.world.database, alert_id)["run_id"] == run.id
    sw.wait(lambda: run.id in json.dumps(page_blocks(sw, channel, ts)), what="the page names the run")


@pytest.mark.parametrize(("user", "version", "refusal"), [(STRANGER, 1, "may not"), (OWNER, 7, "")])
def test_a_stranger_or_a_stale_page_is_refused_and_nothing_changes(
    sw: SlackWorld, user: str, version: int, refusal: str
) -> None:
    _, alert_id, channel, ts = paged(sw)
    before = alert_row(sw.world.database, alert_id)
    for action in (ids.ACK_ALERT, ids.EXPECTED_ALERT, ids.REVOKE_ALERT):
        sw.slack.response_posts.pop(user, None)
        click(sw, action, alert_id, version, user, (channel, ts))
        sw.wait(lambda: bool(sw.slack.response_posts.get(user)), what="the refusal")
        assert refusal in answers(sw, user) and re.search(r"nothing (was )?changed", answers(sw, user), re.I)
    assert alert_row(sw.world.database, alert_id) == before
    assert has_buttons(page_blocks(sw, channel, ts))
    with sw.world.database.session() as session:
        assert session.scalars(select(Run.id)).all() == []


def test_app_home_shows_the_traffic_sparkline_and_the_open_alert(sw: SlackWorld) -> None:
    key_id, _, _, _ = paged(sw)
    now = utcnow()
    lines = [UsageLine(key_id, now - timedelta(minutes=m), requests=40) for m in range(1, 120)]
    record_lines(sw.world.database, [*lines, UsageLine(key_id, now, requests=2000)], source="ingest")
    event = event_callback_body({"type": "app_home_opened", "user": OWNER, "tab": "home"})
    assert sw.post(event).status == 200

    def home() -> str:
        views = [c.args["view"] for c in sw.slack.calls_to("views.publish")]
        return json.dumps(views[-1], ensure_ascii=False) if views else ""

    sw.wait(lambda: "Open alerts on your keys" in home(), what="App Home")
    assert "█" in home() and "6,760 requests" in home() and "🔴 Open" in home()

    url = sw.slack.response_url("card")
    assert (
        sw.post(slash_command_body("/key-owner", f"#{key_id}", user_id=OWNER, response_url=url)).status == 200
    )
    sw.wait(lambda: bool(sw.slack.response_posts.get("card")), what="the key card")
    card = json.dumps(sw.slack.response_posts["card"], ensure_ascii=False)
    assert "Last 6 h of traffic" in card and "█" in card and "Open alerts" in card


def test_the_backup_acknowledges_and_the_owners_page_is_edited_too(sw: SlackWorld) -> None:
    key_id = sw.world.add_key(unique_name("esc"), "staging", consumers=[])
    opened = utcnow() - timedelta(minutes=20)  # the chain's backup step (15 min) is due
    (alert_id,) = raise_alerts(sw.world.database, [finding(key_id, minute=opened)], opened, settings())
    assert run_escalations(sw.world.database, utcnow(), settings()) == [f"{alert_id}:backup"]
    sw.ctx.worker.deliver()
    with sw.world.database.session() as session:
        rows = session.execute(
            select(Notification.recipient, Notification.facts).where(Notification.kind == "alert_page")
        ).all()
    where = {recipient: (facts[POSTED]["channel"], facts[POSTED]["ts"]) for recipient, facts in rows}
    assert set(where) == {OWNER, "U0BACKUP1"}
    backup_page = json.dumps(page_blocks(sw, *where["U0BACKUP1"]))
    assert "You are the backup owner" in backup_page and "pages the team channel at" in backup_page
    click(sw, ids.ACK_ALERT, alert_id, alert_row(sw.world.database, alert_id)["version"], "U0BACKUP1",
          where["U0BACKUP1"])  # fmt: skip
    sw.wait(lambda: not has_buttons(page_blocks(sw, *where[OWNER])), what="the owner's page edited")
    assert "Acknowledged by <@U0BACKUP1>" in json.dumps(page_blocks(sw, *where[OWNER]))


def test_a_member_of_the_teams_on_call_group_may_acknowledge_and_a_non_member_may_not(sw: SlackWorld) -> None:
    from bot.registry.models import Key, Team

    key_id, alert_id, channel, ts = paged(sw)
    with sw.world.database.session() as session:
        team_id = session.scalars(select(Key.team_id).where(Key.id == key_id)).one()
        session.get(Team, team_id).oncall_group = "S0ONCALL9"  # type: ignore[union-attr]
    sw.slack.add_usergroup("S0ONCALL9", ["U0ONCALL1"])
    before = alert_row(sw.world.database, alert_id)
    click(sw, ids.ACK_ALERT, alert_id, 1, "U0NOTONCL", (channel, ts))
    sw.wait(lambda: bool(sw.slack.response_posts.get("U0NOTONCL")), what="the refusal")
    assert alert_row(sw.world.database, alert_id) == before
    click(sw, ids.ACK_ALERT, alert_id, 1, "U0ONCALL1", (channel, ts))
    sw.wait(
        lambda: "Acknowledged by <@U0ONCALL1>" in json.dumps(page_blocks(sw, channel, ts)), what="the edit"
    )
    assert alert_row(sw.world.database, alert_id)["state"] is AlertState.ACKNOWLEDGED
