"""SlackAPI and SlackSender through the real slack_sdk against the Slack Web API stand-in."""

from __future__ import annotations

import socket
import time
from datetime import timedelta
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select, update

from bot.config import ConfigError, Settings
from bot.db.base import utcnow
from bot.db.session import Database
from bot.notifications.models import Notification, NotificationStatus
from bot.notifications.service import Message, deliver_pending, enqueue, recover_interrupted
from bot.slack.api import (
    OpenedView,
    PermanentSlackError,
    PostedMessage,
    SlackAPI,
    SlackError,
    TransientSlackError,
    explain,
)
from bot.slack.delivery import SlackSender, default_render
from tests.standins.slack_api import SlackStandin

LEAKED = "sk-proj-" + "A" * 74 + "T3BlbkFJ" + "b" * 70 + "Xy9Q"
VIEW: dict[str, Any] = {
    "type": "modal",
    "title": {"type": "plain_text", "text": "Revoke key"},
    "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Loading…"}}],
}


@pytest.fixture
def api(slack_standin: SlackStandin) -> SlackAPI:
    return SlackAPI(slack_standin.bot_token, base_url=slack_standin.base_url, backoff=0.01, timeout=5)


def _section(text: str) -> list[dict[str, Any]]:
    return [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]


def _sent(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stored blocks as keybot sent them: without the block_id Slack gives each block that has none."""
    return [{k: v for k, v in block.items() if k != "block_id"} for block in blocks]


# ---- messages ----------------------------------------------------------------------------------
def test_post_then_update_in_place(api: SlackAPI, slack_standin: SlackStandin) -> None:
    posted = api.post_message("C0KEYS", "step 1 running", _section("step 1 :hourglass:"))
    assert isinstance(posted, PostedMessage) and posted.channel == "C0KEYS" and posted.ts
    updated = api.update_message(
        posted.channel, posted.ts, "step 1 done", _section("step 1 :white_check_mark:")
    )
    assert updated == posted
    [message] = slack_standin.messages("C0KEYS")
    assert message["text"] == "step 1 done" and "edited" in message
    assert message["blocks"][0]["text"]["text"] == "step 1 :white_check_mark:"
    [call] = slack_standin.calls_to("chat.postMessage")
    assert call.args["unfurl_links"] is False and call.args["unfurl_media"] is False


def test_thread_metadata_and_redaction_at_the_exit(api: SlackAPI, slack_standin: SlackStandin) -> None:
    root = api.post_message("C0KEYS", "root")
    api.post_message(
        "C0KEYS",
        f"pasted {LEAKED}",
        _section(f"value {LEAKED}"),
        thread_ts=root.ts,
        metadata={"event_type": "keybot_test", "event_payload": {"run": "r1"}},
    )
    reply = slack_standin.messages("C0KEYS")[1]
    assert reply["thread_ts"] == root.ts and reply["metadata"]["event_payload"] == {"run": "r1"}
    assert LEAKED not in str(reply) and "[REDACTED sk-proj-...Xy9Q]" in reply["text"]


def test_ephemeral_delete_permalink_dm_and_groups(api: SlackAPI, slack_standin: SlackStandin) -> None:
    assert api.post_ephemeral("C0KEYS", "U0ALICE", "only you see this")
    assert slack_standin.ephemerals()[0]["user"] == "U0ALICE"
    posted = api.post_message("C0KEYS", "to delete")
    link = api.permalink(posted.channel, posted.ts)
    assert link is not None and link.startswith("https://") and posted.ts.replace(".", "") in link
    api.client.chat_delete(channel=posted.channel, ts=posted.ts)  # someone deleted it
    assert api.permalink(posted.channel, posted.ts) is None
    assert api.open_dm("U0ALICE") == "D0ALICE"
    slack_standin.add_usergroup("S0REVOKERS", ["U0ALICE", "U0BOB"])
    assert api.usergroup_members("S0REVOKERS") == ["U0ALICE", "U0BOB"]
    assert api.auth_test()["user_id"] == slack_standin.bot_user_id


def test_views_open_update_publish(api: SlackAPI, slack_standin: SlackStandin) -> None:
    opened = api.open_view("trigger-1", VIEW)
    assert isinstance(opened, OpenedView) and opened.id.startswith("V") and opened.hash
    done = {**VIEW, "blocks": _section("Key card")}
    updated = api.update_view(opened.id, done, hash=opened.hash)
    stored = slack_standin.view(opened.id)
    assert updated.id == opened.id and stored is not None
    assert _sent(stored["blocks"]) == done["blocks"]
    with pytest.raises(PermanentSlackError) as stale:
        api.update_view(opened.id, VIEW, hash=opened.hash)  # hash from before the update
    assert stale.value.code == "hash_conflict" and "reload" in stale.value.explanation
    home = {"type": "home", "blocks": _section("My keys")}
    assert api.publish_home("U0ALICE", home).id == (slack_standin.home_view("U0ALICE") or {}).get("id")


def test_respond_through_response_url(api: SlackAPI, slack_standin: SlackStandin) -> None:
    api.respond(slack_standin.response_url("cmd"), f"done {LEAKED}", _section("done"))
    api.respond(slack_standin.response_url("cmd"), "shared", ephemeral=False, replace_original=True)
    first, second = slack_standin.response_posts["cmd"]
    assert first["response_type"] == "ephemeral" and LEAKED not in str(first)
    assert second["response_type"] == "in_channel" and second["replace_original"] is True


# ---- retries and errors ------------------------------------------------------------------------
def test_rate_limit_honours_retry_after_then_succeeds(api: SlackAPI, slack_standin: SlackStandin) -> None:
    slack_standin.inject_rate_limit("chat.postMessage", retry_after=1, times=1)
    started = time.monotonic()
    api.post_message("C0KEYS", "after the limit")
    assert time.monotonic() - started >= 1.0
    assert [c.status for c in slack_standin.calls_to("chat.postMessage")] == [429, 200]
    assert len(slack_standin.messages("C0KEYS")) == 1


def test_rate_limit_that_persists_is_transient(slack_standin: SlackStandin) -> None:
    api = SlackAPI(slack_standin.bot_token, base_url=slack_standin.base_url, rate_limit_retries=1)
    slack_standin.inject_rate_limit("chat.postMessage", retry_after=0, times=None)
    with pytest.raises(TransientSlackError) as err:
        api.post_message("C0KEYS", "never")
    assert err.value.code == "ratelimited" and err.value.retry_after == 0
    assert len(slack_standin.calls_to("chat.postMessage")) == 2


def test_long_retry_after_is_left_to_the_caller(api: SlackAPI, slack_standin: SlackStandin) -> None:
    slack_standin.inject_rate_limit("chat.update", retry_after=120, times=1)
    started = time.monotonic()
    with pytest.raises(TransientSlackError) as err:
        api.update_message("C0KEYS", "1.000001", "x")
    assert time.monotonic() - started < 5
    assert err.value.retry_after == 120 and len(slack_standin.calls_to("chat.update")) == 1


def test_not_in_channel_is_permanent_explained_and_not_retried(
    api: SlackAPI, slack_standin: SlackStandin
) -> None:
    slack_standin.inject("chat.postMessage", "not_in_channel", times=None)
    with pytest.raises(PermanentSlackError) as err:
        api.post_message("C0PRIVATE", "hello")
    assert err.value.code == "not_in_channel" and "/invite @keybot" in err.value.explanation
    assert "/invite @keybot" in str(err.value) and err.value.method == "chat.postMessage"
    assert len(slack_standin.calls_to("chat.postMessage")) == 1


def test_channel_not_found_and_expired_trigger(api: SlackAPI, slack_standin: SlackStandin) -> None:
    slack_standin.inject("chat.postMessage", "channel_not_found")
    with pytest.raises(PermanentSlackError) as missing:
        api.post_message("C0GONE", "hello")
    assert missing.value.code == "channel_not_found" and "/invite @keybot" in missing.value.explanation
    slack_standin.inject("views.open", "expired_trigger_id")
    with pytest.raises(PermanentSlackError) as expired:
        api.open_view("trigger-old", VIEW)
    assert expired.value.explanation == "the button/command is older than 3 s; try again"
    assert len(slack_standin.calls_to("views.open")) == 1


def test_missing_scope_names_the_scope_and_the_manifest(api: SlackAPI, slack_standin: SlackStandin) -> None:
    slack_standin.inject(
        "usergroups.users.list",
        "missing_scope",
        extra={"needed": "usergroups:read", "provided": "chat:write"},
    )
    with pytest.raises(PermanentSlackError) as err:
        api.usergroup_members("S0REVOKERS")
    assert err.value.needed == "usergroups:read"
    assert "usergroups:read" in err.value.explanation and "slack-manifest.yaml" in err.value.explanation


def test_server_error_is_retried_then_transient(api: SlackAPI, slack_standin: SlackStandin) -> None:
    slack_standin.inject_http_error("chat.postMessage", 500, times=None)
    with pytest.raises(TransientSlackError) as err:
        api.post_message("C0KEYS", "hello")
    assert err.value.code == "http_500" and err.value.status == 500 and err.value.transient
    assert len(slack_standin.calls_to("chat.postMessage")) == 3  # first try + 2 retries


def test_one_server_error_is_absorbed(api: SlackAPI, slack_standin: SlackStandin) -> None:
    slack_standin.inject_http_error("chat.postMessage", 503, times=1)
    assert api.post_message("C0KEYS", "hello").ts
    assert len(slack_standin.messages("C0KEYS")) == 1


def test_invalid_token_points_at_the_setting_and_never_shows_it(slack_standin: SlackStandin) -> None:
    token = "xoxb-1111111111-2222222222222-ThisIsNotTheRightTokenAtAll"
    api = SlackAPI(SecretStr(token), base_url=slack_standin.base_url)
    with pytest.raises(PermanentSlackError) as err:
        api.auth_test()
    assert err.value.code == "invalid_auth" and "SLACK_BOT_TOKEN" in err.value.explanation
    assert token not in f"{err.value} {err.value!r} {err.value.detail} {err.value.explanation}"
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_unreachable_slack_is_transient(slack_standin: SlackStandin) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    api = SlackAPI("xoxb-0000-x", base_url=f"http://127.0.0.1:{port}/api", backoff=0.01, timeout=2)
    assert api.base_url.endswith("/api/")
    with pytest.raises(TransientSlackError) as err:
        api.post_message("C0KEYS", "hello")
    assert err.value.code == "connection_error" and "SLACK_API_URL" in err.value.explanation


def test_invalid_blocks_carry_slacks_detail(api: SlackAPI, slack_standin: SlackStandin) -> None:
    with pytest.raises(PermanentSlackError) as err:
        api.post_message("C0KEYS", "x", [{"type": "section", "text": {"type": "mrkdwn", "text": "y" * 3001}}])
    assert err.value.code == "invalid_blocks" and "keybot bug" in err.value.explanation
    assert err.value.detail


def test_explain_covers_codes_and_settings() -> None:
    assert "SLACK_BOT_TOKEN" in explain("token_revoked") and "SLACK_BOT_TOKEN" in explain("account_inactive")
    assert "chat:write" in explain("missing_scope", needed="chat:write")
    assert "OAuth scope" in explain("missing_scope")
    assert "unknown_code_x" in explain("unknown_code_x")
    assert "retried" in explain("http_502") and "SLACK_API_URL" in explain("http_404")
    assert issubclass(PermanentSlackError, SlackError) and issubclass(TransientSlackError, SlackError)
    with pytest.raises(ConfigError, match="SLACK_BOT_TOKEN"):
        SlackAPI.from_settings(Settings())
    built = SlackAPI.from_settings(
        Settings(slack_bot_token=SecretStr("xoxb-0000-x"), slack_api_url="http://127.0.0.1:9/api")
    )
    assert built.base_url == "http://127.0.0.1:9/api/"


# ---- SlackSender + the outbox, on SQLite and PostgreSQL ---------------------------------------
def _enqueue(database: Database, messages: list[Message], prefix: str = "run-1:notify") -> None:
    with database.session() as session:
        enqueue(session, messages, dedupe_prefix=prefix, incident_id=None, run_id="run-1")


def _rows(database: Database) -> dict[str, Notification]:
    with database.session() as session:
        return {n.recipient: n for n in session.scalars(select(Notification))}


def _make_due(database: Database) -> None:
    with database.session() as session:
        session.execute(update(Notification).values(next_attempt_at=utcnow() - timedelta(seconds=1)))


def test_sender_delivers_dms_and_channel_posts(
    database: Database, api: SlackAPI, slack_standin: SlackStandin
) -> None:
    _enqueue(
        database,
        [
            Message("owner_dm", "U0ALICE", "checkout was revoked", "Redeploy the consumers."),
            Message("backup_dm", "U0BOB", "checkout was revoked", "Redeploy the consumers."),
            Message("channel", "C0PAYMENTS", "checkout: done", "Replacement in Vault."),
        ],
    )
    assert deliver_pending(database, SlackSender(api)) == (3, 0)
    [dm] = slack_standin.messages("U0ALICE")
    assert dm["text"] == "checkout was revoked\nRedeploy the consumers."
    assert _sent(dm["blocks"]) == default_render(_rows(database)["U0ALICE"])[1]
    assert dm["metadata"] == {
        "event_type": "keybot_notification",
        "event_payload": {"dedupe": "run-1:notify:owner_dm:U0ALICE"},
    }
    assert len(slack_standin.messages("U0BOB")) == 1 and len(slack_standin.messages("C0PAYMENTS")) == 1
    assert all(n.status is NotificationStatus.SENT for n in _rows(database).values())
    assert deliver_pending(database, SlackSender(api)) == (0, 0)  # nothing is sent twice


def test_failed_delivery_is_retried_on_a_later_pass(
    database: Database, api: SlackAPI, slack_standin: SlackStandin
) -> None:
    _enqueue(database, [Message("owner_dm", "U0ALICE", "subject", "body")])
    slack_standin.inject("chat.postMessage", "internal_error", times=1)
    assert deliver_pending(database, SlackSender(api)) == (0, 1)
    row = _rows(database)["U0ALICE"]
    assert row.status is NotificationStatus.PENDING and row.attempts == 1
    assert row.last_error is not None and "internal_error" in row.last_error
    assert deliver_pending(database, SlackSender(api)) == (0, 0)  # backing off: not due yet
    _make_due(database)
    assert deliver_pending(database, SlackSender(api)) == (1, 0)
    row = _rows(database)["U0ALICE"]
    assert row.status is NotificationStatus.SENT and row.last_error is None and row.attempts == 2
    assert len(slack_standin.messages("U0ALICE")) == 1


def test_permanent_failure_records_the_explanation(
    database: Database, api: SlackAPI, slack_standin: SlackStandin
) -> None:
    _enqueue(
        database,
        [
            Message("channel", "C0PRIVATE", "done", "body"),
            Message("owner_dm", "C0NOTAUSER", "done", "body"),
        ],
    )
    slack_standin.inject("chat.postMessage", "not_in_channel", times=None)
    assert deliver_pending(database, SlackSender(api)) == (0, 2)
    rows = _rows(database)
    error = rows["C0PRIVATE"].last_error
    assert error is not None and error.startswith("PermanentSlackError: chat.postMessage: not_in_channel")
    assert "invite it with /invite @keybot" in error
    refused = rows["C0NOTAUSER"].last_error
    assert refused is not None and "invalid_recipient" in refused and "not a Slack user id" in refused
    assert len(slack_standin.calls_to("chat.postMessage")) == 1  # the non-user recipient never reached Slack


def test_custom_renderer_open_dms_and_unknown_outcome(
    database: Database, api: SlackAPI, slack_standin: SlackStandin
) -> None:
    def render(n: Notification) -> tuple[str, list[dict[str, Any]]]:
        return f"custom {n.subject}", _section(f"*custom* {n.body}")

    _enqueue(database, [Message("emergency_dm", "U0ALICE", "revoked: expect errors", "EMERGENCY")])
    sender = SlackSender(api, render=render, open_dms=True)
    assert deliver_pending(database, sender) == (1, 0)
    assert slack_standin.calls_to("conversations.open")[0].args["users"] in ("U0ALICE", ["U0ALICE"])
    [dm] = slack_standin.messages("D0ALICE")
    assert dm["text"] == "custom revoked: expect errors" and _sent(dm["blocks"]) == _section(
        "*custom* EMERGENCY"
    )
    # a row left `sending` by a dead process: the sender cannot tell, so it is not resent
    assert sender.was_delivered(_rows(database)["U0ALICE"]) is None
    _enqueue(database, [Message("owner_dm", "U0BOB", "s", "b")], prefix="run-2")
    with database.session() as session:
        session.execute(
            update(Notification)
            .where(Notification.recipient == "U0BOB")
            .values(status=NotificationStatus.SENDING, next_attempt_at=utcnow() - timedelta(hours=1))
        )
    assert recover_interrupted(database, sender, older_than=timedelta(minutes=5)) == 1
    assert _rows(database)["U0BOB"].status is NotificationStatus.FAILED
    assert slack_standin.messages("U0BOB") == []
