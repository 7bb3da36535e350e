"""Correctly signed Slack requests for driving a Bolt app over HTTP, and payload builders shaped like
Slack's documented payloads (slash commands, block_actions, view_submission, Events API callbacks).

Signing follows https://api.slack.com/authentication/verifying-requests-from-slack:
``X-Slack-Signature = "v0=" + hex(HMAC-SHA256(signing_secret, f"v0:{timestamp}:{body}"))``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

DEFAULT_TEAM_ID = "T0STANDIN"
DEFAULT_TEAM_DOMAIN = "standin"
DEFAULT_USER_ID = "U0ONCALL1"
DEFAULT_USER_NAME = "oncall"
DEFAULT_CHANNEL_ID = "C0INCIDENT"
DEFAULT_CHANNEL_NAME = "incidents"
DEFAULT_APP_ID = "A0STANDIN"
DEFAULT_BOT_USER_ID = "U0KEYBOT"
VERIFICATION_TOKEN = "standin-verification-token"  # deprecated by Slack; present in payloads anyway

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


def sign_request(
    signing_secret: str, body: str | bytes, timestamp: int | None = None, content_type: str | None = None
) -> dict[str, str]:
    """Headers Slack would send with ``body``: ``X-Slack-Request-Timestamp`` and ``X-Slack-Signature``
    (plus ``Content-Type`` when given). ``timestamp`` defaults to now."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    raw = body.encode() if isinstance(body, str) else body
    digest = hmac.new(signing_secret.encode(), b"v0:" + ts.encode() + b":" + raw, hashlib.sha256).hexdigest()
    headers = {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}
    if content_type:
        headers["Content-Type"] = content_type
    return headers


def new_trigger_id() -> str:
    return f"{secrets.randbelow(10**12)}.{secrets.randbelow(10**11)}.{secrets.token_hex(16)}"


@dataclass(frozen=True)
class SignedResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def post_signed(
    url: str,
    signing_secret: str,
    body: str,
    *,
    content_type: str | None = None,
    timestamp: int | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> SignedResponse:
    """POST ``body`` to a Bolt app (e.g. ``http://127.0.0.1:PORT/slack/events``) as Slack would.
    ``content_type`` defaults to JSON for bodies starting with ``{``, else form-urlencoded.
    Extra ``headers`` (e.g. ``{"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}``)
    are added after signing."""
    ctype = content_type or (JSON if body.lstrip().startswith("{") else FORM)
    all_headers = {**sign_request(signing_secret, body, timestamp, ctype), **(headers or {})}
    req = urllib.request.Request(url, data=body.encode(), headers=all_headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return SignedResponse(resp.status, dict(resp.headers.items()), resp.read())
    except urllib.error.HTTPError as err:
        return SignedResponse(err.code, dict(err.headers.items()), err.read())


def _user(user_id: str, user_name: str, team_id: str) -> dict[str, str]:
    return {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id}


def slash_command_body(
    command: str,
    text: str = "",
    *,
    user_id: str = DEFAULT_USER_ID,
    user_name: str = DEFAULT_USER_NAME,
    channel_id: str = DEFAULT_CHANNEL_ID,
    channel_name: str = DEFAULT_CHANNEL_NAME,
    trigger_id: str | None = None,
    team_id: str = DEFAULT_TEAM_ID,
    team_domain: str = DEFAULT_TEAM_DOMAIN,
    response_url: str = "https://hooks.slack.com/commands/T0STANDIN/1/standin",
    api_app_id: str = DEFAULT_APP_ID,
) -> str:
    """Form-urlencoded body of a slash command invocation."""
    return urlencode(
        {
            "token": VERIFICATION_TOKEN,
            "team_id": team_id,
            "team_domain": team_domain,
            "channel_id": channel_id,
            "channel_name": channel_name,
            "user_id": user_id,
            "user_name": user_name,
            "command": command,
            "text": text,
            "api_app_id": api_app_id,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": trigger_id or new_trigger_id(),
        }
    )


def _form_payload(payload: dict[str, Any]) -> str:
    return urlencode({"payload": json.dumps(payload, separators=(",", ":"))})


def block_actions_payload(
    action_id: str,
    value: str | None = None,
    *,
    block_id: str = "actions",
    action_type: str = "button",
    text: str = "Button",
    selected_option: dict[str, Any] | None = None,
    user_id: str = DEFAULT_USER_ID,
    user_name: str = DEFAULT_USER_NAME,
    team_id: str = DEFAULT_TEAM_ID,
    channel_id: str = DEFAULT_CHANNEL_ID,
    message_ts: str | None = "1700000000.000100",
    message: dict[str, Any] | None = None,
    view: dict[str, Any] | None = None,
    trigger_id: str | None = None,
    state_values: dict[str, Any] | None = None,
    response_url: str = "https://hooks.slack.com/actions/T0STANDIN/1/standin",
    api_app_id: str = DEFAULT_APP_ID,
) -> dict[str, Any]:
    """A ``block_actions`` payload; from a message by default, from a modal/App Home when ``view``."""
    action: dict[str, Any] = {
        "action_id": action_id,
        "block_id": block_id,
        "type": action_type,
        "action_ts": f"{time.time():.6f}",
    }
    if action_type == "button":
        action["text"] = {"type": "plain_text", "text": text, "emoji": True}
        if value is not None:
            action["value"] = value
    elif selected_option is not None or value is not None:
        action["selected_option"] = selected_option or {
            "text": {"type": "plain_text", "text": text},
            "value": value,
        }
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": _user(user_id, user_name, team_id),
        "api_app_id": api_app_id,
        "token": VERIFICATION_TOKEN,
        "trigger_id": trigger_id or new_trigger_id(),
        "team": {"id": team_id, "domain": DEFAULT_TEAM_DOMAIN},
        "enterprise": None,
        "is_enterprise_install": False,
        "state": {"values": state_values or {}},
        "actions": [action],
    }
    if view is not None:
        payload["container"] = {"type": "view", "view_id": view.get("id", "V0STANDIN")}
        payload["view"] = view
    else:
        payload["container"] = {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": False,
        }
        payload["channel"] = {"id": channel_id, "name": DEFAULT_CHANNEL_NAME}
        payload["message"] = message or {
            "type": "message",
            "ts": message_ts,
            "text": "",
            "blocks": [],
            "user": DEFAULT_BOT_USER_ID,
        }
        payload["response_url"] = response_url
    return payload


def block_actions_body(action_id: str, value: str | None = None, **kwargs: Any) -> str:
    """Form body ``payload=<json>`` of :func:`block_actions_payload`."""
    return _form_payload(block_actions_payload(action_id, value, **kwargs))


def view_submission_payload(
    callback_id: str,
    state_values: dict[str, Any] | None = None,
    *,
    private_metadata: str = "",
    view_id: str = "V0STANDIN01",
    view_hash: str = "1700000000.standin",
    blocks: list[dict[str, Any]] | None = None,
    user_id: str = DEFAULT_USER_ID,
    user_name: str = DEFAULT_USER_NAME,
    team_id: str = DEFAULT_TEAM_ID,
    trigger_id: str | None = None,
    api_app_id: str = DEFAULT_APP_ID,
) -> dict[str, Any]:
    """A ``view_submission`` payload. ``state_values`` is Slack's
    ``{block_id: {action_id: {"type": "plain_text_input", "value": "..."}}}``."""
    return {
        "type": "view_submission",
        "team": {"id": team_id, "domain": DEFAULT_TEAM_DOMAIN},
        "user": _user(user_id, user_name, team_id),
        "api_app_id": api_app_id,
        "token": VERIFICATION_TOKEN,
        "trigger_id": trigger_id or new_trigger_id(),
        "view": {
            "id": view_id,
            "team_id": team_id,
            "type": "modal",
            "blocks": blocks or [],
            "private_metadata": private_metadata,
            "callback_id": callback_id,
            "state": {"values": state_values or {}},
            "hash": view_hash,
            "title": {"type": "plain_text", "text": "keybot", "emoji": True},
            "clear_on_close": False,
            "notify_on_close": False,
            "close": None,
            "submit": {"type": "plain_text", "text": "Submit", "emoji": True},
            "previous_view_id": None,
            "root_view_id": view_id,
            "app_id": api_app_id,
            "external_id": "",
            "app_installed_team_id": team_id,
            "bot_id": "B0KEYBOT",
        },
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


def view_submission_body(callback_id: str, state_values: dict[str, Any] | None = None, **kwargs: Any) -> str:
    """Form body ``payload=<json>`` of :func:`view_submission_payload`."""
    return _form_payload(view_submission_payload(callback_id, state_values, **kwargs))


def event_callback_body(
    event: dict[str, Any],
    event_id: str | None = None,
    *,
    team_id: str = DEFAULT_TEAM_ID,
    api_app_id: str = DEFAULT_APP_ID,
    event_time: int | None = None,
    bot_user_id: str = DEFAULT_BOT_USER_ID,
) -> str:
    """JSON body of an Events API ``event_callback`` wrapping ``event`` (e.g. a ``message`` or
    ``app_home_opened`` event)."""
    return json.dumps(
        {
            "token": VERIFICATION_TOKEN,
            "team_id": team_id,
            "api_app_id": api_app_id,
            "event": event,
            "type": "event_callback",
            "event_id": event_id or f"Ev{secrets.token_hex(5).upper()}",
            "event_time": event_time or int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": team_id,
                    "user_id": bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": f"4-{secrets.token_hex(12)}",
        }
    )


def url_verification_body(challenge: str = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P") -> str:
    return json.dumps({"token": VERIFICATION_TOKEN, "challenge": challenge, "type": "url_verification"})
