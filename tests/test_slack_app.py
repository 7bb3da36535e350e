"""The Slack surface end to end: signed HTTP requests in, Slack Web API calls out, real engine behind."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.runbooks.models import RunStatus
from bot.slack import ids
from tests.slack_world import SIGNING_SECRET, SlackWorld, serving
from tests.standins.slack_api import SlackStandin
from tests.standins.slack_payloads import (
    block_actions_body,
    event_callback_body,
    post_signed,
    sign_request,
    slash_command_body,
    view_submission_body,
)
from tests.world import World, unique_name


@pytest.fixture
def sw(world: World, slack_standin: SlackStandin) -> Iterator[SlackWorld]:
    with serving(world, slack_standin) as served:
        yield served


def submit_revoke(sw: SlackWorld, key_id: int, mode: str, reason: str, user: str = "U0ONCALL1") -> None:
    state = {
        ids.MODE_BLOCK: {ids.MODE_ACTION: {"type": "radio_buttons", "selected_option": {"value": mode}}},
        ids.REASON_BLOCK: {ids.REASON_ACTION: {"type": "plain_text_input", "value": reason}},
        ids.SEVERITY_BLOCK: {
            ids.SEVERITY_ACTION: {"type": "static_select", "selected_option": {"value": "sev1"}}
        },
    }
    meta = ids.ActionRef(kind="key", id=str(key_id)).encode()
    body = view_submission_body(ids.REVOKE_MODAL, state, private_metadata=meta, user_id=user)
    response = sw.post(body)
    assert response.status == 200, response.text
    assert response.json() == {"response_action": "clear"}


def progress_buttons(sw: SlackWorld, channel: str) -> dict[str, str]:
    messages = sw.slack.messages(channel)
    progress = next(
        m for m in reversed(messages) if any(b.get("block_id") == "run_title" for b in m.get("blocks", []))
    )
    buttons = {}
    for block in progress["blocks"]:
        for element in block.get("elements", []):
            if element.get("type") == "button":
                buttons[element["action_id"]] = element["value"]
    return buttons


def press(sw: SlackWorld, action_id: str, value: str, user: str) -> None:
    response = sw.post(
        block_actions_body(action_id, value, user_id=user, response_url=sw.slack.response_url(user))
    )
    assert response.status == 200, response.text


def test_revoke_key_command_opens_loading_modal_then_the_form(sw: SlackWorld) -> None:
    name = unique_name()
    sw.world.add_key(name, "production")
    started = time.monotonic()
    response = sw.post(slash_command_body("/revoke-key", name, response_url=sw.slack.response_url()))
    assert response.status == 200 and time.monotonic() - started < 3
    sw.slack.wait_for("views.update", timeout=10)
    opened = sw.slack.calls_to("views.open")[0].args["view"]
    assert opened["callback_id"] == ids.LOADING_MODAL
    form = sw.slack.calls_to("views.update")[0].args["view"]
    assert form["callback_id"] == ids.REVOKE_MODAL
    assert name in json.dumps(form) and "U0OWNER01" in json.dumps(form)


def test_full_staged_run_with_two_person_approval(sw: SlackWorld) -> None:
    name = unique_name()
    key_id = sw.world.add_key(name, "production")
    old = sw.world.keys[name]
    submit_revoke(sw, key_id, "staged", "posted in #random by mistake <!channel>")
    sw.wait(lambda: sw.run_status() is RunStatus.AWAITING_APPROVAL, what="approval gate")
    channel = next(c.args["channel"] for c in sw.slack.calls_to("chat.postMessage"))
    sw.wait(lambda: ids.APPROVE in progress_buttons(sw, channel), what="approve button")
    approve = progress_buttons(sw, channel)[ids.APPROVE]

    press(sw, ids.APPROVE, approve, "U0ONCALL1")
    sw.wait(lambda: bool(sw.slack.response_posts.get("U0ONCALL1")), what="self-approval refusal")
    assert "two-person" in json.dumps(sw.slack.response_posts["U0ONCALL1"]).lower()
    assert sw.run_status() is RunStatus.AWAITING_APPROVAL

    press(sw, ids.APPROVE, approve, "U0SECOND1")
    sw.wait(lambda: sw.run_status() is RunStatus.SUCCEEDED, what="run to finish")
    sw.wait(lambda: not progress_buttons(sw, channel), what="final progress message")
    assert not sw.world.openai.authenticates(old["value"])
    messages = sw.slack.messages(channel)
    headers = [
        m for m in messages if any(b.get("block_id", "").startswith("incident") for b in m.get("blocks", []))
    ]
    progress = [m for m in messages if any(b.get("block_id") == "run_title" for b in m.get("blocks", []))]
    assert len(headers) == 1 and len(progress) == 1, "one incident header, one progress message"
    assert progress[0].get("thread_ts") == headers[0]["ts"], "progress is threaded under the incident header"
    sw.wait(lambda: bool(sw.slack.messages("U0OWNER01")), what="owner DM")
    dm = json.dumps(sw.slack.messages("U0OWNER01"))
    assert old["path"] in dm and "U0ONCALL1" in dm
    updates = sw.slack.calls_to("chat.update")
    assert len(updates) >= 2
    outgoing = sw.outgoing_text()
    assert old["value"] not in outgoing
    assert "<!channel>" not in outgoing


def test_emergency_run_without_approval_on_staging(sw: SlackWorld) -> None:
    name = unique_name()
    key_id = sw.world.add_key(name, "staging")
    submit_revoke(sw, key_id, "emergency", "abused from unknown IPs")
    sw.wait(lambda: sw.run_status() is RunStatus.SUCCEEDED, what="emergency run")
    sw.wait(lambda: bool(sw.slack.messages("U0OWNER01")), what="owner DMs")
    kinds = json.dumps(sw.slack.messages("U0OWNER01"))
    assert "EMERGENCY" in kinds


def test_skip_and_abort_through_modals(sw: SlackWorld) -> None:
    name = unique_name()
    key_id = sw.world.add_key(name, "staging")
    sw.world.openai.inject(r"/api_keys/", status=403, times=None, method="DELETE")
    submit_revoke(sw, key_id, "staged", "leaked")
    sw.wait(lambda: sw.run_status() is RunStatus.NEEDS_ATTENTION, what="needs attention")
    run = sw.latest_run()
    state = {ids.SKIP_REASON_BLOCK: {ids.SKIP_REASON_ACTION: {"type": "plain_text_input", "value": ""}}}
    meta = ids.run_ref(run.id, "revoke_old", run.version).encode()
    empty = sw.post(view_submission_body(ids.SKIP_MODAL, state, private_metadata=meta, user_id="U0OWNER01"))
    assert empty.json()["response_action"] == "errors"
    state[ids.SKIP_REASON_BLOCK][ids.SKIP_REASON_ACTION]["value"] = "deleted by hand in the console"
    submitted = sw.post(
        view_submission_body(ids.SKIP_MODAL, state, private_metadata=meta, user_id="U0OWNER01")
    )
    assert submitted.json() == {"response_action": "clear"}
    sw.wait(lambda: sw.latest_run().step("revoke_old").skip_reason is not None, what="skip recorded")
    sw.wait(lambda: sw.run_status() is RunStatus.NEEDS_ATTENTION, what="verify_revoked attention")
    abort_state = {
        ids.ABORT_REASON_BLOCK: {ids.ABORT_REASON_ACTION: {"type": "plain_text_input", "value": "x"}}
    }
    abort_meta = ids.ActionRef(kind="run", id=run.id).encode()
    sw.post(
        view_submission_body(ids.ABORT_MODAL, abort_state, private_metadata=abort_meta, user_id="U0ONCALL1")
    )
    sw.wait(lambda: sw.run_status() is RunStatus.ABORTED, what="abort")


def test_key_owner_and_rotate_key(sw: SlackWorld) -> None:
    name = unique_name()
    sw.world.add_key(name, "staging")
    url = sw.slack.response_url("owner")
    assert sw.post(slash_command_body("/key-owner", name, response_url=url)).status == 200
    sw.wait(lambda: bool(sw.slack.response_posts.get("owner")), what="key-owner answer")
    assert "U0OWNER01" in json.dumps(sw.slack.response_posts["owner"])
    rotate_url = sw.slack.response_url("rotate")
    sw.post(slash_command_body("/rotate-key", name, response_url=rotate_url, user_id="U0OWNER01"))
    sw.wait(lambda: sw.run_status() is RunStatus.SUCCEEDED, what="rotation")
    assert sw.latest_run().runbook == "rotate"


def test_leak_watcher_replies_in_thread_without_echo_and_dedupes_retries(sw: SlackWorld) -> None:
    name = unique_name()
    sw.world.add_key(name, "staging")
    secret = sw.world.keys[name]["value"]
    event = {
        "type": "message",
        "channel": "C0INCIDENT",
        "user": "U0POSTER1",
        "text": f"here you go {secret}",
        "ts": "1700000001.000200",
        "channel_type": "channel",
    }
    body = event_callback_body(event, event_id="Ev0LEAK0001")
    assert sw.post(body).status == 200
    assert (
        sw.post(body, headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}).status
        == 200
    )
    sw.wait(lambda: bool(sw.slack.calls_to("chat.postMessage")), what="leak reply")
    time.sleep(0.5)
    replies = sw.slack.calls_to("chat.postMessage")
    assert len(replies) == 1
    reply = replies[0].args
    assert reply["thread_ts"] == "1700000001.000200"
    text = json.dumps(reply)
    assert secret not in text and secret[-4:] in text and name in text and "U0OWNER01" in text


def test_home_tab_is_published(sw: SlackWorld) -> None:
    sw.world.add_key(unique_name(), "staging")
    event = {"type": "app_home_opened", "user": "U0OWNER01", "tab": "home", "channel": "D0HOME"}
    assert sw.post(event_callback_body(event, event_id="Ev0HOME01")).status == 200
    sw.slack.wait_for("views.publish", timeout=10)
    published = sw.slack.calls_to("views.publish")[0].args
    assert published["user_id"] == "U0OWNER01"


def test_slack_published_signature_vector() -> None:
    body = (
        "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&"
        "channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&"
        "response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
        "trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    headers = sign_request(SIGNING_SECRET, body, timestamp=1531420618)
    assert (
        headers["X-Slack-Signature"] == "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    )


def test_bad_signatures_stale_timestamps_and_bad_bodies(sw: SlackWorld) -> None:
    body = slash_command_body("/revoke-key", "x", response_url=sw.slack.response_url())
    assert post_signed(sw.url, "wrong-secret", body).status == 401
    assert sw.post(body, timestamp=int(time.time()) - 6 * 60).status == 401
    assert sw.post("x" * 1_100_000).status == 413
    assert sw.post("payload=%7Bnot-json", content_type="application/x-www-form-urlencoded").status < 500
    assert sw.post("{not json", content_type="application/json").status < 500
    garbage = block_actions_body(
        ids.APPROVE, "garbage-not-a-ref", response_url=sw.slack.response_url("garbage")
    )
    assert sw.post(garbage).status == 200
    sw.wait(lambda: bool(sw.slack.response_posts.get("garbage")), what="stale-button answer")
    assert sw.slack.calls_to("views.open") == []


def test_serving_with_a_token_slack_refuses_is_one_clear_line(
    slack_standin: SlackStandin, tmp_path: Path
) -> None:
    from bot.config import ConfigError, Settings
    from bot.runtime import Runtime
    from bot.slack.app import slack_app_from_runtime

    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/k.db",
        slack_bot_token="xoxb-0000-not-a-token-slack-knows",
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=slack_standin.base_url,
        fingerprint_key="k" * 32,
    )
    with pytest.raises(ConfigError) as refused:
        slack_app_from_runtime(Runtime(settings))
    message = str(refused.value)
    assert "auth.test" in message and "invalid_auth" in message and "xoxb-0000" not in message
