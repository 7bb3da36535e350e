"""The leak watcher through signed Events API requests, with message shapes as Slack documents them: it
sees every place a secret can hide, answers once per secret per message, threads under the parent, and
its advice on an unregistered secret leads to a revocation that works."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from bot.detection.service import DETECTED
from bot.incidents.models import Incident, TimelineEvent
from bot.registry.models import Key, KeyStatus
from bot.runbooks.models import RunStatus
from bot.slack import ids
from tests.fakes import canary_key
from tests.slack_world import SlackWorld, serving
from tests.standins.slack_api import SlackStandin
from tests.standins.slack_payloads import (
    block_actions_payload,
    event_callback_body,
    view_submission_body,
)
from tests.world import World, unique_name

CHANNEL = "C0LEAKS01"


@pytest.fixture
def sw(world: World, slack_standin: SlackStandin) -> Iterator[SlackWorld]:
    with serving(world, slack_standin) as served:
        yield served


def message(ts: str, text: str = "", **extra: Any) -> dict[str, Any]:
    """A ``message`` event in a channel, as the Events API delivers it."""
    return {
        "type": "message",
        "channel": CHANNEL,
        "user": "U0POSTER1",
        "text": text,
        "ts": ts,
        "event_ts": ts,
        "channel_type": "channel",
        **extra,
    }


def snippet_upload(ts: str, content: str) -> dict[str, Any]:
    """A text snippet upload (``file_share``): the content arrives only as ``files[].preview``."""
    return message(
        ts,
        "",
        subtype="file_share",
        upload=False,
        files=[
            {
                "id": "F0SNIPPET1",
                "name": "env.txt",
                "title": "env.txt",
                "mimetype": "text/plain",
                "filetype": "text",
                "pretty_type": "Plain Text",
                "mode": "snippet",
                "is_external": False,
                "preview": content,
                "preview_highlight": '<div class="CodeMirror">…</div>',
                "lines": 3,
                "lines_more": 0,
                "preview_is_truncated": False,
            }
        ],
    )


def forwarded(ts: str, content: str) -> dict[str, Any]:
    """A shared (forwarded) message: the original lives in ``attachments`` (fallback, text, fields)."""
    return message(
        ts,
        "",
        attachments=[
            {
                "fallback": "[November 27th, 2026 1:00 PM] someone: see below",
                "ts": "1700000000.000001",
                "author_id": "U0ORIGINAL",
                "channel_id": "C0ELSEWHERE",
                "is_msg_unfurl": True,
                "is_share": True,
                "text": "see below",
                "fields": [{"title": "config", "value": content, "short": False}],
                "footer": "Posted in #elsewhere",
            }
        ],
    )


def rich_text_only(ts: str, content: str) -> dict[str, Any]:
    """A message whose words exist only in rich_text blocks (``text`` empty)."""
    return message(
        ts,
        "",
        blocks=[
            {
                "type": "rich_text",
                "block_id": "rt1",
                "elements": [
                    {
                        "type": "rich_text_preformatted",
                        "elements": [
                            {"type": "text", "text": "OPENAI_API_KEY="},
                            {"type": "text", "text": content},
                        ],
                    }
                ],
            }
        ],
    )


def ci_bot(ts: str, content: str) -> dict[str, Any]:
    """Another app's bot (a CI bot pasting an environment dump): ``subtype: bot_message``, no user."""
    event = message(ts, f"env dump:\nPATH=/usr/bin\nOPENAI_API_KEY={content}", subtype="bot_message")
    del event["user"]
    event.update(bot_id="B0CIBOT001", username="ci-bot", app_id="A0CIBOT001")
    return event


def edited(ts: str, new_text: str, old_text: str, *, edit_ts: str) -> dict[str, Any]:
    """``message_changed``: the message as it is now, and as it was."""
    return {
        "type": "message",
        "subtype": "message_changed",
        "channel": CHANNEL,
        "hidden": True,
        "ts": edit_ts,
        "event_ts": edit_ts,
        "channel_type": "channel",
        "message": {
            "type": "message",
            "user": "U0POSTER1",
            "text": new_text,
            "ts": ts,
            "edited": {"user": "U0POSTER1", "ts": edit_ts},
        },
        "previous_message": {"type": "message", "user": "U0POSTER1", "text": old_text, "ts": ts},
    }


def deliver(sw: SlackWorld, event: dict[str, Any]) -> None:
    response = sw.post(event_callback_body(event))
    assert response.status == 200, response.text


def warnings(sw: SlackWorld) -> list[dict[str, Any]]:
    return [c.args for c in sw.slack.calls_to("chat.postMessage") if c.args.get("channel") == CHANNEL]


def settle(sw: SlackWorld, count: int) -> list[dict[str, Any]]:
    """Wait for ``count`` warnings, then a little longer to be sure no further one comes."""
    sw.wait(lambda: len(warnings(sw)) >= count, what=f"{count} warning(s)")
    time.sleep(0.6)
    return warnings(sw)


def leak_incidents(sw: SlackWorld) -> list[Incident]:
    with sw.world.database.session() as session:
        return list(session.scalars(select(Incident).where(Incident.reason == "leak watcher")))


@pytest.mark.parametrize("shape", [snippet_upload, forwarded, rich_text_only, ci_bot])
def test_secrets_outside_text_are_found(sw: SlackWorld, shape: Any) -> None:
    """Finding 12: snippets, forwarded messages, rich-text-only blocks and other bots were not scanned."""
    name = unique_name()
    sw.world.add_key(name, "staging")
    secret = sw.world.keys[name]["value"]
    deliver(sw, shape("1700000100.000100", secret))
    [reply] = settle(sw, 1)
    assert name in json.dumps(reply) and secret not in json.dumps(reply)
    if shape is ci_bot:
        assert "ci-bot (bot)" in json.dumps(reply), "another app's bot is named, not mentioned as a user"
    with sw.world.database.session() as session:
        key = session.scalars(select(Key).where(Key.name == name)).one()
        assert key.status is KeyStatus.COMPROMISED


def test_keybots_own_messages_are_not_scanned(sw: SlackWorld) -> None:
    name = unique_name()
    sw.world.add_key(name, "staging")
    own = ci_bot("1700000101.000100", sw.world.keys[name]["value"])
    own.update(bot_id=sw.slack.bot_id, user=sw.slack.bot_user_id)
    deliver(sw, own)
    deliver(sw, message("1700000101.000200", "a harmless line"))  # something to wait past
    time.sleep(1.0)
    assert warnings(sw) == []


def test_an_edit_or_unfurl_of_the_same_message_warns_once(sw: SlackWorld) -> None:
    """Finding 12: ``message_changed`` with the same text produced a second warning and incident."""
    secret = canary_key()
    text = f"the key is {secret} https://example.com"
    deliver(sw, message("1700000200.000100", text))
    settle(sw, 1)
    deliver(sw, edited("1700000200.000100", text, text, edit_ts="1700000201.000100"))  # the unfurl
    deliver(sw, edited("1700000200.000100", text + " (edited)", text, edit_ts="1700000202.000100"))
    time.sleep(0.8)
    assert len(warnings(sw)) == 1
    assert len(leak_incidents(sw)) == 1


def test_an_edit_that_adds_a_secret_warns_about_the_new_one_only(sw: SlackWorld) -> None:
    first, second = canary_key(), canary_key()
    deliver(sw, message("1700000300.000100", f"one: {first}"))
    settle(sw, 1)
    deliver(
        sw,
        edited("1700000300.000100", f"one: {first} two: {second}", f"one: {first}", edit_ts="1700000301.1"),
    )
    replies = settle(sw, 2)
    newest = json.dumps(replies[1])
    assert second[-4:] in newest and first[-4:] not in newest
    assert replies[1]["thread_ts"] == "1700000300.000100"


def test_a_warning_on_a_thread_reply_goes_to_the_parents_thread(sw: SlackWorld) -> None:
    """Finding 12: warnings on thread replies used the reply's ts as thread_ts."""
    deliver(sw, message("1700000400.000500", f"oops {canary_key()}", thread_ts="1700000400.000100"))
    [reply] = settle(sw, 1)
    assert reply["thread_ts"] == "1700000400.000100"


def leak_button(reply: dict[str, Any]) -> str:
    blocks = reply["blocks"] if isinstance(reply["blocks"], list) else json.loads(reply["blocks"])
    return next(
        b["accessory"]["value"]
        for b in blocks
        if (b.get("accessory") or {}).get("action_id") == ids.REVOKE_FROM_LEAK
    )


def click(sw: SlackWorld, value: str, user: str = "U0ONCALL1") -> None:
    payload = block_actions_payload(
        ids.REVOKE_FROM_LEAK,
        value,
        user_id=user,
        channel_id=CHANNEL,
        response_url=sw.slack.response_url(user),
    )
    assert sw.post(urlencode({"payload": json.dumps(payload)})).status == 200


def test_an_unregistered_secret_is_revoked_through_the_warnings_button(sw: SlackWorld) -> None:
    """Finding 11: the advice for an unregistered secret was a dead end and did not name the incident."""
    project = sw.world.openai.add_project("unregistered project")
    live = sw.world.openai.add_key(project["id"], "pasted by someone")
    deliver(sw, message("1700000500.000100", f"try {live['value']}"))
    [reply] = settle(sw, 1)
    [incident] = leak_incidents(sw)
    assert incident.reference in json.dumps(reply)
    value = leak_button(reply)
    assert live["value"] not in value and live["value"] not in json.dumps(reply)

    click(sw, value)
    sw.slack.wait_for("views.update", timeout=15)
    form = sw.slack.calls_to("views.update")[-1].args["view"]
    form = json.loads(form) if isinstance(form, str) else form
    assert form["callback_id"] == ids.REVOKE_MODAL, form
    meta = form["private_metadata"]
    with sw.world.database.session() as session:
        key = session.get(Key, int(ids.ActionRef.decode(meta).id))
        assert key is not None and key.provider_key_id == live["id"] and key.status is KeyStatus.COMPROMISED
        assert session.get(Incident, incident.id).key_id == key.id  # type: ignore[union-attr]

    state = {
        ids.MODE_BLOCK: {
            ids.MODE_ACTION: {"type": "radio_buttons", "selected_option": {"value": "emergency"}}
        },
        ids.REASON_BLOCK: {ids.REASON_ACTION: {"type": "plain_text_input", "value": "pasted in #leaks"}},
        ids.SEVERITY_BLOCK: {
            ids.SEVERITY_ACTION: {"type": "static_select", "selected_option": {"value": "sev1"}}
        },
    }
    submitted = sw.post(
        view_submission_body(ids.REVOKE_MODAL, state, private_metadata=meta, user_id="U0ONCALL1")
    )
    assert submitted.json() == {"response_action": "clear"}
    sw.wait(lambda: sw.run_status() is RunStatus.AWAITING_APPROVAL, what="approval gate (production)")
    run = sw.latest_run()
    approve = ids.run_ref(run.id, "revoke_old", run.version).encode()
    payload = block_actions_payload(
        ids.APPROVE, approve, user_id="U0SECOND1", response_url=sw.slack.response_url("U0SECOND1")
    )
    assert sw.post(urlencode({"payload": json.dumps(payload)})).status == 200
    sw.wait(lambda: not sw.world.openai.authenticates(live["value"]), what="the leaked key revoked")


def test_an_unregistered_secret_the_provider_does_not_know_gets_exact_instructions(sw: SlackWorld) -> None:
    secret = canary_key()
    deliver(sw, message("1700000600.000100", f"here {secret}"))
    [reply] = settle(sw, 1)
    [incident] = leak_incidents(sw)
    click(sw, leak_button(reply))
    sw.slack.wait_for("views.update", timeout=15)
    modal = json.dumps(sw.slack.calls_to("views.update")[-1].args["view"])
    assert "console" in modal and incident.reference in modal and secret[-4:] in modal
    assert secret not in modal
    with sw.world.database.session() as session:
        events = session.scalars(select(TimelineEvent).where(TimelineEvent.incident_id == incident.id)).all()
        assert any(e.kind == DETECTED for e in events)
        assert secret not in json.dumps([e.data for e in events])


def test_someone_who_may_not_revoke_learns_why_and_nothing_is_registered(sw: SlackWorld) -> None:
    project = sw.world.openai.add_project("unregistered project")
    live = sw.world.openai.add_key(project["id"], "pasted by someone")
    deliver(sw, message("1700000700.000100", f"try {live['value']}"))
    [reply] = settle(sw, 1)
    click(sw, leak_button(reply), user="U0STRANGER")
    sw.slack.wait_for("views.update", timeout=15)
    modal = json.dumps(sw.slack.calls_to("views.update")[-1].args["view"])
    assert "Not allowed" in modal
    with sw.world.database.session() as session:
        assert session.scalars(select(Key).where(Key.provider_key_id == live["id"])).first() is None


def test_an_enterprise_grid_message_is_scanned(sw: SlackWorld) -> None:
    """Org-wide (Enterprise Grid) installs: ``authorizations[].team_id`` is null and ``enterprise_id`` set."""
    name = unique_name()
    sw.world.add_key(name, "staging")
    event = message("1700000800.000100", f"key: {sw.world.keys[name]['value']}")
    event.update(team="T0STANDIN", user_team="T0STANDIN", source_team="T0STANDIN")
    body = json.loads(event_callback_body(event))
    body.update(enterprise_id="E0GRID0001", context_enterprise_id="E0GRID0001", context_team_id="T0STANDIN")
    body["authorizations"][0].update(enterprise_id="E0GRID0001", team_id=None, is_enterprise_install=True)
    assert sw.post(json.dumps(body)).status == 200
    [reply] = settle(sw, 1)
    assert name in json.dumps(reply)
