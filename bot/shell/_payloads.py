"""Requests shaped like Slack's documented payloads, signed like Slack signs them.

The shell builds exactly what Slack would send (slash command forms, ``block_actions``,
``view_submission``, ``view_closed``, Events API callbacks), so the Bolt app's request verification stays on
and its handlers cannot tell the terminal from Slack.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

Json = dict[str, Any]
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
VERIFICATION_TOKEN = "shell-verification-token"  # noqa: S105 - deprecated by Slack, still sent in payloads


def sign(signing_secret: str, body: str, content_type: str, timestamp: int | None = None) -> dict[str, str]:
    """``X-Slack-Signature: v0=HMAC_SHA256(secret, "v0:{ts}:{body}")`` plus the timestamp header."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    base = f"v0:{ts}:{body}".encode()
    digest = hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
    }


def escape(text: str) -> str:
    """Slack clients send ``&``, ``<`` and ``>`` escaped in message and command text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass(frozen=True)
class Who:
    """The person at the terminal and where they are."""

    user_id: str
    user_name: str
    team_id: str
    team_domain: str
    channel_id: str
    channel_name: str
    app_id: str
    bot_user_id: str

    def user(self) -> Json:
        return {
            "id": self.user_id,
            "username": self.user_name,
            "name": self.user_name,
            "team_id": self.team_id,
        }

    def team(self) -> Json:
        return {"id": self.team_id, "domain": self.team_domain}


def form_payload(payload: Json) -> str:
    """Interactivity requests are ``payload=<json>`` form posts."""
    return urlencode({"payload": json.dumps(payload, separators=(",", ":"))})


def slash_command(who: Who, command: str, text: str, *, response_url: str, trigger_id: str) -> str:
    return urlencode(
        {
            "token": VERIFICATION_TOKEN,
            "team_id": who.team_id,
            "team_domain": who.team_domain,
            "channel_id": who.channel_id,
            "channel_name": who.channel_name,
            "user_id": who.user_id,
            "user_name": who.user_name,
            "command": command,
            "text": text,
            "api_app_id": who.app_id,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": trigger_id,
        }
    )


def _interaction(who: Who, kind: str, trigger_id: str) -> Json:
    return {
        "type": kind,
        "user": who.user(),
        "api_app_id": who.app_id,
        "token": VERIFICATION_TOKEN,
        "trigger_id": trigger_id,
        "team": who.team(),
        "enterprise": None,
        "is_enterprise_install": False,
    }


def button_action(element: Json, block_id: str, label: str) -> Json:
    """The ``actions[0]`` of a button click."""
    action: Json = {
        "action_id": element.get("action_id", ""),
        "block_id": block_id,
        "text": {"type": "plain_text", "text": label, "emoji": True},
        "type": "button",
        "action_ts": f"{time.time():.6f}",
    }
    for key in ("value", "style", "url"):
        if key in element:
            action[key] = element[key]
    return action


def block_actions_in_message(
    who: Who,
    action: Json,
    *,
    channel: str,
    message: Json | None,
    message_ts: str,
    ephemeral: bool,
    response_url: str,
    trigger_id: str,
) -> Json:
    """A click in a message; Slack omits ``message`` when the message is ephemeral."""
    payload = _interaction(who, "block_actions", trigger_id)
    payload["container"] = {
        "type": "message",
        "message_ts": message_ts,
        "channel_id": channel,
        "is_ephemeral": ephemeral,
    }
    payload["channel"] = {"id": channel, "name": who.channel_name if channel == who.channel_id else channel}
    if message is not None:
        payload["message"] = message
    payload["state"] = {"values": {}}
    payload["response_url"] = response_url
    payload["actions"] = [action]
    return payload


def block_actions_in_view(who: Who, action: Json, *, view: Json, trigger_id: str) -> Json:
    """A click in a modal or on App Home: ``container`` names the view, ``view`` is the stored view."""
    payload = _interaction(who, "block_actions", trigger_id)
    payload["container"] = {"type": "view", "view_id": view.get("id")}
    payload["view"] = view
    payload["state"] = view.get("state") or {"values": {}}
    payload["actions"] = [action]
    return payload


def view_submission(who: Who, view: Json, values: dict[str, dict[str, Json]], *, trigger_id: str) -> Json:
    payload = _interaction(who, "view_submission", trigger_id)
    payload["view"] = {**view, "state": {"values": values}}
    payload["response_urls"] = []
    return payload


def view_closed(who: Who, view: Json, *, is_cleared: bool = False) -> Json:
    payload = _interaction(who, "view_closed", "")
    del payload["trigger_id"]
    payload["view"] = view
    payload["is_cleared"] = is_cleared
    return payload


def event_callback(who: Who, event: Json) -> str:
    """An Events API ``event_callback`` wrapping ``event``; every delivery gets a fresh ``event_id``."""
    return json.dumps(
        {
            "token": VERIFICATION_TOKEN,
            "team_id": who.team_id,
            "api_app_id": who.app_id,
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev{secrets.token_hex(5).upper()}",
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": who.team_id,
                    "user_id": who.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": f"4-{secrets.token_hex(12)}",
        }
    )


def message_event(who: Who, text: str, ts: str) -> Json:
    return {
        "type": "message",
        "channel": who.channel_id,
        "user": who.user_id,
        "text": text,
        "ts": ts,
        "event_ts": ts,
        "team": who.team_id,
        "client_msg_id": str(uuid.uuid4()),
        "channel_type": "channel",
    }


def app_mention_event(who: Who, text: str, ts: str) -> Json:
    return {
        "type": "app_mention",
        "channel": who.channel_id,
        "user": who.user_id,
        "text": text,
        "ts": ts,
        "event_ts": ts,
        "team": who.team_id,
        "client_msg_id": str(uuid.uuid4()),
    }


def app_home_opened_event(who: Who, dm_channel: str, view: Json | None) -> Json:
    event: Json = {
        "type": "app_home_opened",
        "user": who.user_id,
        "channel": dm_channel,
        "tab": "home",
        "event_ts": f"{time.time():.6f}",
    }
    if view is not None:
        event["view"] = view
    return event
