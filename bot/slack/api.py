"""The ONE Slack Web API wrapper: slack_sdk's retry handlers, typed errors, plain explanations.

Every outgoing Slack call goes through :class:`SlackAPI`, so retries, error classification and redaction
are decided in one place. Rate limits (HTTP 429) are retried in-process while ``Retry-After`` is short,
connection errors and HTTP 500/503 a few times with backoff; anything else raises a
:class:`PermanentSlackError` (retrying cannot help) or a :class:`TransientSlackError` (a later attempt
may succeed). Each error carries ``.code`` (Slack's, or ``http_<status>``/``connection_error``) and
``.explanation``: one sentence telling a human what to do. Error texts never contain the bot token, a
``response_url`` or a secret (they pass through :func:`bot.secrets.redact`). The error classes and
explanations live in :mod:`bot.slack.api_errors` and are re-exported here.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest as RetryRequest
from slack_sdk.http_retry.response import HttpResponse as RetryResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View
from slack_sdk.web import SlackResponse
from slack_sdk.webhook import WebhookClient

from bot.config import ConfigError, Settings
from bot.observability.metrics import observe_call
from bot.secrets import redact, redact_obj
from bot.slack.api_errors import (
    PermanentSlackError,
    SlackError,
    TransientSlackError,
    explain,
    is_transient_code,
    slack_error,
)
from bot.slack.transport import KeepAliveWebClient

__all__ = [
    "DEFAULT_SLACK_API_URL",
    "OpenedView",
    "PermanentSlackError",
    "PostedMessage",
    "SlackAPI",
    "SlackError",
    "TransientSlackError",
    "explain",
    "is_transient_code",
    "slack_error",
]

log = logging.getLogger(__name__)

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
Blocks = Sequence[dict[str, Any] | Block]
ViewLike = dict[str, Any] | View

_CODE = re.compile(r"[a-z0-9_]{1,64}")


@dataclass(frozen=True)
class PostedMessage:
    channel: str  # the conversation id Slack answered with (a DM's D... id when a user id was given)
    ts: str


@dataclass(frozen=True)
class OpenedView:
    id: str
    hash: str | None


def _retry_after(headers: Mapping[str, Any]) -> float | None:
    """``Retry-After`` in seconds; header values may be a string or a list of strings."""
    for name, value in headers.items():
        if name.lower() == "retry-after" and value:
            try:
                return float(value[0] if isinstance(value, list) else value)
            except ValueError:
                return None
    return None


class _BoundedRateLimitHandler(RateLimitErrorRetryHandler):
    """Honours Retry-After in-process only while the wait is short; a long wait is better spent by the
    caller's scheduler (the outbox, the engine) than by a blocked worker thread."""

    def __init__(self, max_retry_count: int, max_wait: float) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait = max_wait

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: RetryRequest,
        response: RetryResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or not super()._can_retry(state=state, request=request, response=response):
            return False
        wait = _retry_after(response.headers)
        return wait is None or wait <= self.max_wait


class SlackAPI:
    """Typed, small methods over ``slack_sdk.WebClient``; ``.client`` can be handed to a Bolt ``App``."""

    def __init__(
        self,
        token: str | SecretStr,
        *,
        base_url: str = DEFAULT_SLACK_API_URL,
        timeout: int = 15,
        rate_limit_retries: int = 3,
        max_retry_after: float = 30.0,
        server_retries: int = 2,
        backoff: float = 0.5,
    ) -> None:
        self._token = token.get_secret_value() if isinstance(token, SecretStr) else token
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.timeout = timeout
        interval = BackoffRetryIntervalCalculator(backoff_factor=backoff)  # one attempt counter per request
        self._handlers: list[RetryHandler] = [
            _BoundedRateLimitHandler(rate_limit_retries, max_retry_after),
            ServerErrorRetryHandler(max_retry_count=server_retries, interval_calculator=interval),
            ConnectionErrorRetryHandler(max_retry_count=server_retries, interval_calculator=interval),
        ]
        self.client: WebClient = KeepAliveWebClient(
            token=self._token, base_url=self.base_url, timeout=timeout, retry_handlers=self._handlers
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> SlackAPI:
        if settings.slack_bot_token is None:
            raise ConfigError(
                "SLACK_BOT_TOKEN is not set: copy the Bot User OAuth Token (xoxb-...) of the installed app"
            )
        return cls(settings.slack_bot_token, base_url=settings.slack_api_url)

    # ---- error mapping -----------------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        return redact(text.replace(self._token, "[SLACK_BOT_TOKEN]") if self._token else text)

    def _call(self, method: str, fn: Callable[..., SlackResponse], **kwargs: Any) -> SlackResponse:
        """The one place a Web API call is made: timed (with its retries) and its error counted by code."""
        started = time.perf_counter()
        try:
            response = fn(**{k: v for k, v in kwargs.items() if v is not None})
        except SlackApiError as exc:
            error = self._api_error(method, exc.response)
        except (OSError, SlackClientError) as exc:  # URLError, timeouts, refused connections
            error = TransientSlackError(
                "connection_error", method=method, detail=self._scrub(f"{type(exc).__name__}: {exc}")
            )
        else:
            observe_call("slack", method, time.perf_counter() - started)
            return response
        observe_call("slack", method, time.perf_counter() - started, error.code)
        log.warning("slack call failed", extra={"method": method, "code": error.code})
        raise error from None  # the SDK's chain holds request bodies; nothing of it leaves this module

    def _api_error(self, method: str, response: SlackResponse) -> SlackError:
        status = int(response.status_code)
        data = response.data if isinstance(response.data, dict) else {}
        raw = data.get("error")
        if status == 429:
            code = "ratelimited"
        elif status != 200:
            code = f"http_{status}"
        else:
            code = raw if isinstance(raw, str) and _CODE.fullmatch(raw) else "unexpected_response"
        messages = (data.get("response_metadata") or {}).get("messages") or data.get("errors") or []
        detail = "; ".join(str(m) for m in messages)[:400] if isinstance(messages, list) else None
        needed = data.get("needed") if isinstance(data.get("needed"), str) else None
        retry_after = _retry_after(response.headers or {})
        return slack_error(
            code,
            method=method,
            status=status,
            needed=needed,
            detail=self._scrub(detail) if detail else None,
            retry_after=retry_after if status == 429 else None,
        )

    # ---- messages ----------------------------------------------------------------------------
    def post_message(
        self,
        channel: str,
        text: str,
        blocks: Blocks | None = None,
        *,
        thread_ts: str | None = None,
        metadata: dict[str, Any] | None = None,
        unfurl: bool = False,
    ) -> PostedMessage:
        extra = {"thread_ts": thread_ts, "metadata": redact_obj(metadata) if metadata else None}
        unfurls = {"unfurl_links": unfurl, "unfurl_media": unfurl}
        post = self.client.chat_postMessage
        resp = self._call(
            "chat.postMessage", post, channel=channel, **_content(text, blocks), **extra, **unfurls
        )
        return PostedMessage(str(resp["channel"]), str(resp["ts"]))

    def update_message(self, channel: str, ts: str, text: str, blocks: Blocks | None = None) -> PostedMessage:
        """Edit in place: progress lives in one message that is updated, not a stream of posts."""
        content = _content(text, blocks)
        resp = self._call("chat.update", self.client.chat_update, channel=channel, ts=ts, **content)
        return PostedMessage(str(resp["channel"]), str(resp["ts"]))

    def post_ephemeral(self, channel: str, user: str, text: str, blocks: Blocks | None = None) -> str:
        post, content = self.client.chat_postEphemeral, _content(text, blocks)
        resp = self._call("chat.postEphemeral", post, channel=channel, user=user, **content)
        return str(resp["message_ts"])

    def permalink(self, channel: str, ts: str) -> str | None:
        """A link to the message, or None when it (or its channel) no longer exists."""
        try:
            resp = self._call(
                "chat.getPermalink", self.client.chat_getPermalink, channel=channel, message_ts=ts
            )
        except PermanentSlackError as err:
            if err.code in ("message_not_found", "channel_not_found"):
                return None
            raise
        link = resp.get("permalink")
        return str(link) if link else None

    def upload_file(
        self,
        channel: str,
        content: bytes,
        filename: str,
        *,
        title: str | None = None,
        alt_text: str | None = None,
        thread_ts: str | None = None,
    ) -> str:
        """Share a file (a chart) in a conversation, in ``thread_ts``'s thread: slack_sdk's three-step
        ``files_upload_v2``. Returns the file id. ``channel`` must be a conversation id (a DM's D...)."""
        upload = self.client.files_upload_v2
        resp = self._call(
            "files.upload_v2",
            upload,
            channel=channel,
            content=content,
            filename=filename,
            title=title,
            alt_txt=alt_text,
            thread_ts=thread_ts,
        )
        found = resp.get("file") or {}
        return str(found.get("id", "")) if isinstance(found, dict) else ""

    # ---- views -------------------------------------------------------------------------------
    def open_view(self, trigger_id: str, view: ViewLike) -> OpenedView:
        """Open within 3 s of the click; open a "Loading…" view first and update it when slow work is done."""
        resp = self._call("views.open", self.client.views_open, trigger_id=trigger_id, view=_view(view))
        return _opened(resp)

    def update_view(self, view_id: str, view: ViewLike, hash: str | None = None) -> OpenedView:
        """``hash`` (from the last open/update) makes a concurrent edit fail with ``hash_conflict``."""
        resp = self._call(
            "views.update", self.client.views_update, view_id=view_id, view=_view(view), hash=hash
        )
        return _opened(resp)

    def publish_home(self, user_id: str, view: ViewLike) -> OpenedView:
        resp = self._call("views.publish", self.client.views_publish, user_id=user_id, view=_view(view))
        return _opened(resp)

    # ---- people ------------------------------------------------------------------------------
    def open_dm(self, user_id: str) -> str:
        resp = self._call("conversations.open", self.client.conversations_open, users=[user_id])
        return str(resp["channel"]["id"])

    def usergroup_members(self, usergroup_id: str) -> list[str]:
        resp = self._call("usergroups.users.list", self.client.usergroups_users_list, usergroup=usergroup_id)
        return [str(u) for u in resp.get("users") or []]

    def auth_test(self) -> dict[str, Any]:
        resp = self._call("auth.test", self.client.auth_test)
        return dict(resp.data) if isinstance(resp.data, dict) else {}

    # ---- response_url ------------------------------------------------------------------------
    def respond(
        self,
        response_url: str,
        text: str,
        blocks: Blocks | None = None,
        *,
        ephemeral: bool = True,
        replace_original: bool = False,
    ) -> None:
        """Answer a slash command or click through its ``response_url`` (no token; same retries).

        The URL itself is a credential for 30 minutes, so it never appears in an error."""
        hook = WebhookClient(url=response_url, timeout=self.timeout, retry_handlers=self._handlers)
        started = time.perf_counter()
        try:
            kind = "ephemeral" if ephemeral else "in_channel"
            resp = hook.send(**_content(text, blocks), response_type=kind, replace_original=replace_original)
        except (OSError, SlackClientError) as exc:
            observe_call("slack", "response_url", time.perf_counter() - started, "connection_error")
            raise TransientSlackError(
                "connection_error", method="response_url", detail=type(exc).__name__
            ) from None
        code = None
        if resp.status_code != 200:
            body = (resp.body or "").strip()
            code = body if _CODE.fullmatch(body) else f"http_{resp.status_code}"
            code = "ratelimited" if resp.status_code == 429 else code
        observe_call("slack", "response_url", time.perf_counter() - started, code)
        if code is not None:
            raise slack_error(code, method="response_url", status=resp.status_code)


def _content(text: str, blocks: Blocks | None) -> dict[str, Any]:
    """Text and plain-dict blocks, redacted: a message is one more exit where a secret must not slip out."""
    plain = None if blocks is None else [b.to_dict() if isinstance(b, Block) else dict(b) for b in blocks]
    return {"text": redact(text), "blocks": None if plain is None else redact_obj(plain)}


def _view(view: ViewLike) -> dict[str, Any]:
    plain = view.to_dict() if isinstance(view, View) else dict(view)
    return dict(redact_obj(plain))


def _opened(resp: SlackResponse) -> OpenedView:
    view = resp.get("view") or {}
    hash_ = view.get("hash")
    return OpenedView(str(view.get("id", "")), str(hash_) if hash_ else None)
