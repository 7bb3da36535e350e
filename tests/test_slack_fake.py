"""One Slack fake: the shell's emulator is what tests drive, and it refuses what Slack refuses.

Issue 10, finding 12 (first bullet): the shell's emulator and the tests' stand-in were two fakes with the
same method table. These tests pin that the stand-in *is* the emulator with test-only extras, and that the
Block Kit validation only the tests' copy had now protects ``keybot run`` users too.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.shell import LocalSlack
from tests.standins.slack_api import SlackStandin

STANDINS = Path(__file__).parent / "standins"
TITLE = {"type": "plain_text", "text": "Revoke key"}


def _modal(text: str = "Loading…", **extra: Any) -> dict[str, Any]:
    return {
        "type": "modal",
        "title": TITLE,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
        **extra,
    }


def _button(text: str = "Approve", **extra: Any) -> dict[str, Any]:
    return {"type": "button", "text": {"type": "plain_text", "text": text}, "action_id": "a", **extra}


@pytest.fixture
def emulator() -> Iterator[LocalSlack]:
    with LocalSlack() as emu:
        yield emu


@pytest.fixture
def client(emulator: LocalSlack) -> WebClient:
    return WebClient(token=emulator.bot_token, base_url=emulator.base_url)


def _post(url: str, body: dict[str, Any]) -> tuple[int, str]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_the_stand_in_is_the_shell_emulator_with_test_extras() -> None:
    assert issubclass(SlackStandin, LocalSlack)
    assert not hasattr(SlackStandin, "chat_post_message")  # no second method table
    assert not (STANDINS / "_slack_handlers.py").exists() and not (STANDINS / "_slack_blocks.py").exists()


@pytest.mark.parametrize(
    ("blocks", "detail"),
    [
        ([{"type": "actions", "elements": [_button("x" * 76)]}], "button text longer than 75"),
        ([{"type": "actions", "elements": [_button(value="v" * 2001)]}], "button value longer than 2000"),
        ([{"type": "actions", "elements": []}], "must have 1 to 25 items"),
        ([{"type": "section"}], "section needs text or fields"),
        ([{"type": "divider", "block_id": "same"}, {"type": "divider", "block_id": "same"}], "duplicate"),
        ([{"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11}], "no more than 10"),
    ],
)
def test_the_emulator_refuses_block_kit_slack_refuses(
    client: WebClient, emulator: LocalSlack, blocks: list[dict[str, Any]], detail: str
) -> None:
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="C0SHELL", text="x", blocks=blocks)
    answer = err.value.response
    assert answer["error"] == "invalid_blocks" and any(detail in e for e in answer["errors"])
    assert all(m.startswith("[ERROR] ") for m in answer["response_metadata"]["messages"])
    assert emulator.messages("C0SHELL") == []


def test_the_emulator_refuses_modal_titles_and_buttons_slack_refuses(
    client: WebClient, emulator: LocalSlack
) -> None:
    long_title = {**_modal(), "title": {"type": "plain_text", "text": "t" * 25}}
    with pytest.raises(SlackApiError) as err:
        client.views_open(trigger_id=emulator.new_trigger_id(), view=long_title)
    assert err.value.response["error"] == "invalid_arguments"
    assert "view.title must be 1 to 24" in " ".join(err.value.response["response_metadata"]["messages"])
    long_submit = _modal(submit={"type": "plain_text", "text": "s" * 25})
    with pytest.raises(SlackApiError, match="invalid_arguments"):
        client.views_open(trigger_id=emulator.new_trigger_id(), view=long_submit)
    assert emulator.modals() == []


def test_two_peoples_modals_do_not_close_each_other(client: WebClient, emulator: LocalSlack) -> None:
    alice = client.views_open(trigger_id=emulator.new_trigger_id("U0ALICE"), view=_modal())["view"]
    bob = client.views_open(trigger_id=emulator.new_trigger_id("U0BOB"), view=_modal())["view"]
    updated = client.views_update(view_id=alice["id"], hash=alice["hash"], view=_modal("Key card"))["view"]
    assert updated["id"] == alice["id"] and emulator.view(bob["id"]) is not None
    mine = client.views_open(trigger_id=emulator.new_trigger_id(), view=_modal())["view"]
    again = client.views_open(trigger_id=emulator.new_trigger_id(), view=_modal())["view"]
    assert [v["id"] for v in emulator.modals()] == [again["id"]] and emulator.view(mine["id"]) is None


def test_the_stand_in_takes_a_payloads_trigger_id_once(slack_standin: SlackStandin) -> None:
    client = WebClient(token=slack_standin.bot_token, base_url=slack_standin.base_url)
    trigger = "398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"  # signed elsewhere
    assert client.views_open(trigger_id=trigger, view=_modal())["ok"]
    with pytest.raises(SlackApiError, match="exchanged_trigger_id"):
        client.views_open(trigger_id=trigger, view=_modal())
    assert [c.status for c in slack_standin.calls_to("views.open")] == [200, 200]


def test_the_stand_ins_response_url_answers_like_slack(slack_standin: SlackStandin) -> None:
    url = slack_standin.response_url("U0ALICE")
    assert _post(url, {"text": "only you", "response_type": "ephemeral"}) == (200, "ok")
    assert _post(url, {"text": "everyone", "response_type": "in_channel"}) == (200, "ok")
    assert slack_standin.ephemerals()[-1]["user"] == "U0ALICE"
    assert [m["text"] for m in slack_standin.messages("C0INCIDENT")] == ["everyone"]
    for _ in range(3):
        assert _post(url, {"text": "again"})[0] == 200
    assert _post(url, {"text": "sixth"}) == (404, "used_url")  # Slack: five uses per response_url
    assert len(slack_standin.response_posts["U0ALICE"]) == 6
    assert [c.status for c in slack_standin.calls_to("response_url")][-1] == 404
    slack_standin.response_url("U0ALICE")  # handing it out again gives five fresh uses
    assert _post(url, {"text": "fresh"}) == (200, "ok")
