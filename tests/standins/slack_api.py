"""The shell's Slack emulator (:class:`bot.shell.emulator.LocalSlack`) with the extras only tests need.

There is one Slack fake: the emulator ``keybot run`` ships, which answers every Web API method keybot
calls and checks Block Kit like Slack. Tests wrap it here with call recording (:meth:`calls_to`,
:meth:`wait_for`), fault injection (errors, HTTP 429 with ``Retry-After``, HTTP errors), named
response_urls whose posts are kept in :attr:`response_posts`, and a record of emulator crashes.
``WebClient(token=standin.bot_token, base_url=standin.base_url)`` talks to it over HTTP. Signing helpers
and payload builders are in :mod:`.slack_payloads` and re-exported here.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.shell._model import ResponseTarget
from bot.shell.emulator import LocalSlack, Reply

from .slack_payloads import (
    DEFAULT_APP_ID,
    DEFAULT_CHANNEL_ID,
    DEFAULT_TEAM_ID,
    DEFAULT_USER_ID,
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

_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")
_IDENTITY = {"bot_token": "xoxb-0000-standin-bot-token", "team_id": DEFAULT_TEAM_ID, "app_id": DEFAULT_APP_ID}


@dataclass
class SlackCall:
    """One Web API call (or ``method="response_url"`` for a POST to :meth:`SlackStandin.response_url`)."""

    method: str
    args: dict[str, Any]  # query + form/JSON body merged; JSON-encoded form fields (blocks, view...) decoded
    headers: dict[str, str]
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

    def reply(self) -> Reply:
        if self.status == 429:
            body = {"ok": False, "error": "ratelimited"}
            return Reply.json(body, 429, {"Retry-After": str(self.retry_after)})
        if self.error is None:
            return Reply.text(self.status, "upstream error")
        return Reply.json({"ok": False, "error": self.error, **self.extra})


class SlackStandin(LocalSlack):
    """:class:`LocalSlack` as the tests' Slack: accepts trigger ids from signed test payloads, knows only
    the users a test adds, and records every call."""

    def __init__(self, **identity: str) -> None:
        """``identity``: ``bot_token``, ``team_id``, ``app_id``... (defaults match the payload builders)."""
        self._recorded = threading.Condition()
        self.calls: list[SlackCall] = []  # type: ignore[assignment]  # richer than the emulator's names
        self.faults: list[_Fault] = []
        self.response_posts: dict[str, list[dict[str, Any]]] = {}
        self.crashes: list[str] = []  # tracebacks of emulator bugs (answered HTTP 500)
        settings = {**_IDENTITY, **identity}
        super().__init__(**settings, trigger_ttl=None, strict_triggers=False, auto_users=False)

    def start(self) -> SlackStandin:
        super().start()
        return self

    def __enter__(self) -> SlackStandin:
        return self.start()

    def reset(self) -> None:
        """A fresh workspace and no recorded calls, faults, response posts or crashes."""
        super().reset()
        with self._recorded:
            self.calls = []
            self.faults = []
            self.response_posts = {}
            self.crashes = []

    def response_url(  # type: ignore[override]  # named, so tests can find what was posted to it
        self,
        name: str = "default",
        *,
        channel: str = DEFAULT_CHANNEL_ID,
        user: str | None = None,
        message_ts: str | None = None,
    ) -> str:
        """A payload's ``response_url``; POSTs to it are answered like Slack (five uses from this call)
        and kept in ``response_posts[name]``. ``user`` defaults to ``name`` when it is a user id."""
        who = user or (name if _USER_ID.fullmatch(name) else DEFAULT_USER_ID)
        return self._register_hook(name, ResponseTarget(channel, who, message_ts))

    # ---- faults ------------------------------------------------------------------------------
    def inject(
        self, method: str, error: str, *, times: int | None = 1, extra: dict[str, Any] | None = None
    ) -> None:
        """Next ``times`` calls of ``method`` answer ``{"ok": false, "error": error, **extra}``."""
        with self._recorded:
            self.faults.append(_Fault(method, times, error, dict(extra or {})))

    def inject_rate_limit(self, method: str, retry_after: int = 1, *, times: int | None = 1) -> None:
        """Next ``times`` calls answer HTTP 429 with ``Retry-After: retry_after``."""
        with self._recorded:
            self.faults.append(_Fault(method, times, "ratelimited", status=429, retry_after=retry_after))

    def inject_http_error(self, method: str, status: int = 500, *, times: int | None = 1) -> None:
        with self._recorded:
            self.faults.append(_Fault(method, times, None, status=status))

    def _take_fault(self, method: str) -> _Fault | None:
        with self._recorded:
            for fault in self.faults:
                if fault.method == method and fault.remaining != 0:
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    return fault
        return None

    # ---- assertions --------------------------------------------------------------------------
    def calls_to(self, method: str) -> list[SlackCall]:
        with self._recorded:
            return [c for c in self.calls if c.method == method]

    def wait_for(self, method: str, count: int = 1, timeout: float = 5.0) -> list[SlackCall]:
        """Block until at least ``count`` calls of ``method`` were answered (for lazy listeners)."""
        deadline = time.monotonic() + timeout
        with self._recorded:
            while len(done := [c for c in self.calls if c.method == method and c.status is not None]) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"expected {count} call(s) to {method}, saw {len(done)}: "
                        f"{[c.method for c in self.calls]}"
                    )
                self._recorded.wait(left)
            return done

    # ---- the emulator's hooks ------------------------------------------------------------------
    def _record(self, call: SlackCall) -> None:
        with self._recorded:
            self.calls.append(call)

    def _answered(self, call: SlackCall, reply: Reply) -> Reply:
        with self._recorded:
            call.status, call.response = reply.status, reply.payload
            self._recorded.notify_all()
        return reply

    def _api(self, name: str, args: dict[str, Any], headers: Mapping[str, str]) -> Reply:
        call = SlackCall(name, args, dict(headers))
        self._record(call)
        fault = self._take_fault(name) if self.auth_error(headers, args) is None else None
        return self._answered(call, fault.reply() if fault else self._respond(name, args, headers))

    def _hook(self, token: str, args: dict[str, Any], headers: Mapping[str, str]) -> Reply:
        call = SlackCall("response_url", {**args, "_hook": token}, dict(headers))
        self._record(call)
        with self._recorded:
            self.response_posts.setdefault(token, []).append(args)
        return self._answered(call, super()._hook(token, args, headers))

    def crashed(self, method: str, path: str, trace: str) -> None:
        with self._recorded:
            self.crashes.append(f"{method} {path}\n{trace}")
