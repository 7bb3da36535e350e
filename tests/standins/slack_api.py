"""Local stand-in for the Slack Web API, as ``slack_sdk.WebClient`` calls it.

``WebClient(token=standin.bot_token, base_url=standin.base_url)`` builds ``urljoin(base_url, method)``,
so ``base_url`` ends in ``/api/`` like Slack's default ``https://slack.com/api/``. Every call is recorded;
answers are Slack-shaped (HTTP 200 with ``{"ok": false, "error": ...}`` for API errors, HTTP 429 with
``Retry-After`` for rate limits). Signing helpers and payload builders are in :mod:`.slack_payloads`
and re-exported here.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from ._http import BackgroundServer, HttpRequest, Reply
from ._slack_blocks import MAX_MESSAGE_BLOCKS, MAX_MESSAGE_TEXT, block_errors, view_errors
from ._slack_handlers import SlackHandlers
from .slack_payloads import (
    block_actions_body,
    block_actions_payload,
    event_callback_body,
    post_signed,
    sign_request,
    slash_command_body,
    url_verification_body,
    view_submission_body,
    view_submission_payload,
)

__all__ = [
    "SlackCall",
    "SlackStandin",
    "block_actions_body",
    "block_actions_payload",
    "event_callback_body",
    "post_signed",
    "sign_request",
    "slash_command_body",
    "url_verification_body",
    "view_submission_body",
    "view_submission_payload",
]

_JSON_FIELDS = ("blocks", "attachments", "view", "metadata", "unfurls")


@dataclass
class SlackCall:
    """One Web API call (or ``method="response_url"`` for a POST to :meth:`SlackStandin.response_url`)."""

    method: str
    args: dict[str, Any]  # query + form/JSON body merged; JSON-encoded form fields (blocks, view...) decoded
    headers: dict[str, str]
    http_method: str = "POST"
    status: int | None = None
    response: dict[str, Any] | None = None
    at: float = field(default_factory=time.time)

    @property
    def token(self) -> str | None:
        auth = self.headers.get("authorization", "")
        return auth.removeprefix("Bearer ").strip() or self.args.get("token")


@dataclass
class _Fault:
    method: str
    remaining: int | None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    status: int = 200
    retry_after: int | None = None


class SlackStandin(SlackHandlers):
    def __init__(
        self,
        *,
        bot_token: str = "xoxb-0000-standin-bot-token",  # noqa: S107
        team_id: str = "T0STANDIN",
        team: str = "Standin",
        bot_user_id: str = "U0KEYBOT",
        bot_id: str = "B0KEYBOT",
        app_id: str = "A0STANDIN",
    ) -> None:
        self.bot_token = bot_token
        self.team_id, self.team, self.app_id = team_id, team, app_id
        self.bot_user_id, self.bot_id = bot_user_id, bot_id
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._server = BackgroundServer(self._handle, on_crash=self._crashed)
        self.reset()

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> SlackStandin:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> SlackStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def origin(self) -> str:
        return self._server.origin

    @property
    def base_url(self) -> str:
        """For ``WebClient(base_url=...)`` and ``SLACK_API_URL``; ends with ``/api/``."""
        return f"{self._server.origin}/api/"

    def response_url(self, name: str = "default") -> str:
        """A URL to put in payloads' ``response_url``; POSTs to it are recorded as method ``response_url``."""
        return f"{self._server.origin}/hooks/{name}"

    def reset(self) -> None:
        with self._lock:
            self.valid_tokens: set[str] = {self.bot_token}
            self.calls: list[SlackCall] = []
            self.faults: list[_Fault] = []
            self.enforce_block_limits = True
            self.channel_messages: dict[str, list[dict[str, Any]]] = {}
            self.ephemerals: list[dict[str, Any]] = []
            self.views: dict[str, dict[str, Any]] = {}
            self.home_views: dict[str, dict[str, Any]] = {}
            self.users: dict[str, dict[str, Any]] = {}
            self.usergroups: dict[str, list[str]] = {}
            self.response_posts: dict[str, list[Any]] = {}
            self.crashes: list[str] = []  # tracebacks of stand-in bugs (answered HTTP 500)
            self._seq = 0

    # ---- state API ---------------------------------------------------------------------------
    def add_user(
        self,
        user_id: str,
        name: str | None = None,
        *,
        real_name: str | None = None,
        email: str | None = None,
        tz: str = "Europe/Berlin",
        is_bot: bool = False,
        deleted: bool = False,
        is_admin: bool = False,
    ) -> dict[str, Any]:
        name = name or user_id.lower()
        real = real_name or name.title()
        user = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "deleted": deleted,
            "real_name": real,
            "tz": tz,
            "tz_label": tz,
            "tz_offset": 0,
            "is_admin": is_admin,
            "is_owner": False,
            "is_bot": is_bot,
            "is_app_user": False,
            "updated": int(time.time()),
            "profile": {
                "real_name": real,
                "display_name": name,
                "email": email or f"{name}@example.com",
                "team": self.team_id,
            },
        }
        with self._lock:
            self.users[user_id] = user
        return user

    def add_usergroup(self, usergroup_id: str, users: list[str]) -> None:
        with self._lock:
            self.usergroups[usergroup_id] = list(users)

    def messages(self, channel: str) -> list[dict[str, Any]]:
        """Current messages in ``channel`` (oldest first), after updates and deletes. A user id given
        as channel means the bot's DM with that user."""
        with self._lock:
            return [dict(m) for m in self.channel_messages.get(self.dm_channel_id(channel), [])]

    def dm_channel_id(self, channel: str) -> str:
        return "D" + channel[1:] if channel[:1] in ("U", "W") else channel

    # ---- faults ------------------------------------------------------------------------------
    def inject(
        self, method: str, error: str, *, times: int | None = 1, extra: dict[str, Any] | None = None
    ) -> None:
        """Next ``times`` calls of ``method`` answer ``{"ok": false, "error": error, **extra}``."""
        with self._lock:
            self.faults.append(_Fault(method, times, error, dict(extra or {})))

    def inject_rate_limit(self, method: str, retry_after: int = 1, *, times: int | None = 1) -> None:
        """Next ``times`` calls answer HTTP 429 with ``Retry-After: retry_after`` and
        ``{"ok": false, "error": "ratelimited"}``."""
        with self._lock:
            self.faults.append(_Fault(method, times, "ratelimited", status=429, retry_after=retry_after))

    def inject_http_error(self, method: str, status: int = 500, *, times: int | None = 1) -> None:
        with self._lock:
            self.faults.append(_Fault(method, times, None, status=status))

    # ---- assertions --------------------------------------------------------------------------
    def calls_to(self, method: str) -> list[SlackCall]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def wait_for(self, method: str, count: int = 1, timeout: float = 5.0) -> list[SlackCall]:
        """Block until at least ``count`` calls of ``method`` were answered (for lazy listeners)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(done := [c for c in self.calls if c.method == method and c.status is not None]) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"expected {count} call(s) to {method}, saw {len(done)}: "
                        f"{[c.method for c in self.calls]}"
                    )
                self._changed.wait(left)
            return done

    # ---- HTTP --------------------------------------------------------------------------------
    def _parse(self, req: HttpRequest) -> dict[str, Any]:
        args: dict[str, Any] = dict(req.query)
        ctype = req.headers.get("content-type", "")
        if req.body and "json" in ctype:
            body = json.loads(req.body)
            if isinstance(body, dict):
                args.update(body)
        elif req.body:
            args.update(parse_qsl(req.body.decode(), keep_blank_values=True))
        for key in _JSON_FIELDS:
            if isinstance(args.get(key), str) and args[key][:1] in ("[", "{"):
                with contextlib.suppress(ValueError):  # else left as is; handlers answer like Slack
                    args[key] = json.loads(args[key])
        return args

    def _take_fault(self, method: str) -> _Fault | None:
        for fault in self.faults:
            if fault.method == method and fault.remaining != 0:
                if fault.remaining is not None:
                    fault.remaining -= 1
                return fault
        return None

    def _crashed(self, req: HttpRequest, trace: str) -> None:
        with self._lock:
            self.crashes.append(f"{req.method} {req.path}\n{trace}")

    def _handle(self, req: HttpRequest) -> Reply:
        path = re.sub("/{2,}", "/", req.path)
        args = self._parse(req)
        if path.startswith("/hooks/"):
            return self._response_url(path.removeprefix("/hooks/"), req, args)
        method = path.removeprefix("/api/")
        call = SlackCall(method, args, req.headers, req.method)
        with self._lock:
            self.calls.append(call)
            reply, payload = self._answer(method, call)
            call.status, call.response = reply.status, payload
            self._changed.notify_all()
        return reply

    def _answer(self, method: str, call: SlackCall) -> tuple[Reply, dict[str, Any] | None]:
        token = call.token
        if not token:
            payload: dict[str, Any] = {"ok": False, "error": "not_authed"}
        elif token not in self.valid_tokens:
            payload = {"ok": False, "error": "invalid_auth"}
        elif (fault := self._take_fault(method)) is not None:
            if fault.status == 429:
                body = {"ok": False, "error": "ratelimited"}
                return Reply.json(body, 429, {"Retry-After": str(fault.retry_after)}), body
            if fault.error is None:
                return Reply(fault.status, b"upstream error", {"Content-Type": "text/plain"}), None
            payload = {"ok": False, "error": fault.error, **fault.extra}
        else:
            handler: Callable[[Any, dict[str, Any]], dict[str, Any]] | None = self.HANDLERS.get(method)
            payload = handler(self, call.args) if handler else {"ok": False, "error": "unknown_method"}
        return Reply.json(payload), payload

    def _response_url(self, name: str, req: HttpRequest, args: dict[str, Any]) -> Reply:
        call = SlackCall("response_url", args, req.headers, req.method, status=200, response=None)
        call.args["_hook"] = name
        with self._lock:
            self.calls.append(call)
            self.response_posts.setdefault(name, []).append(args)
            self._changed.notify_all()
        return Reply(200, b"ok", {"Content-Type": "text/html"})

    # ---- helpers used by handlers ------------------------------------------------------------
    def _next_ts(self) -> str:
        self._seq += 1
        return f"{int(time.time())}.{self._seq:06d}"

    def _content_errors(self, args: dict[str, Any]) -> dict[str, Any] | None:
        if not self.enforce_block_limits:
            return None
        if len(str(args.get("text") or "")) > MAX_MESSAGE_TEXT:
            return {"ok": False, "error": "msg_too_long"}
        if isinstance(args.get("blocks"), str):
            return {"ok": False, "error": "invalid_blocks_format"}
        errors = block_errors(args.get("blocks"), max_blocks=MAX_MESSAGE_BLOCKS)
        if errors:
            return {
                "ok": False,
                "error": "invalid_blocks",
                "errors": errors,
                "response_metadata": {"messages": [f"[ERROR] {e}" for e in errors]},
            }
        return None

    def _view_errors(self, view: Any) -> dict[str, Any] | None:
        if isinstance(view, str):
            return {
                "ok": False,
                "error": "invalid_arguments",
                "response_metadata": {"messages": ["[ERROR] view is not valid JSON"]},
            }
        errors = view_errors(view) if self.enforce_block_limits else []
        if errors:
            return {
                "ok": False,
                "error": "invalid_arguments",
                "response_metadata": {"messages": [f"[ERROR] {e}" for e in errors]},
            }
        return None

    def _new_view_id(self) -> str:
        return "V" + secrets.token_hex(5).upper()
