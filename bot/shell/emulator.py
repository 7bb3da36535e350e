"""A local, in-process Slack Web API for the shell adapter: ``keybot run`` without Slack credentials.

The real ``slack_sdk.WebClient(base_url=emulator.base_url)`` talks HTTP to it, so the bot's Slack code
runs unchanged (one code path); only the transport differs. It answers the methods keybot uses with
Slack-shaped JSON, keeps the workspace's state (see :mod:`bot.shell._state`) and reports every visible
change to listeners from one delivery thread, in order, so the terminal can print messages that Bolt
handlers post or update later from background threads.
"""

from __future__ import annotations

import logging
import queue
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from bot.shell import _files, _oauth
from bot.shell._methods import METHODS
from bot.shell._model import Change, Json, ResponseTarget, SlackError
from bot.shell._state import SlackState
from bot.shell._wire import LoopbackServer, Reply, parse_args

__all__ = ["Change", "Listener", "LocalSlack", "Reply"]

log = logging.getLogger(__name__)

Listener = Callable[[Change], None]
RESPONSE_URL_USES = 5  # Slack: a response_url works five times...
RESPONSE_URL_TTL = 30 * 60  # ...within 30 minutes


class LocalSlack:
    """Slack's Web API on ``127.0.0.1:<free port>`` plus the workspace it acts on.

    ``trigger_ttl`` mirrors Slack's 3-second life of a ``trigger_id`` (None: never expires);
    ``strict_triggers=False`` also accepts trigger ids it did not issue (once each), for payloads signed
    elsewhere; ``auto_users`` makes ``users.info`` answer for any ``U...`` id instead of
    ``user_not_found``. Subclasses hook :meth:`_api`, :meth:`_hook` and :meth:`crashed`.
    """

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-local-shell",  # noqa: S107 - a fixed local token, not a credential
        team_id: str = "T0SHELL",
        bot_user_id: str = "U0KEYBOT",
        bot_id: str = "B0KEYBOT",
        app_id: str = "A0SHELL",
        trigger_ttl: float | None = 3.0,
        strict_triggers: bool = True,
        auto_users: bool = True,
        on_change: Listener | None = None,
    ) -> None:
        self.bot_token = bot_token
        self.team_id, self.bot_user_id, self.bot_id, self.app_id = team_id, bot_user_id, bot_id, app_id
        self.calls: list[str] = []  # Web API methods called, in order (for tests and debugging)
        self._listeners: list[Listener] = [on_change] if on_change else []
        self._queue: queue.SimpleQueue[Change | None] = queue.SimpleQueue()
        self._activity = threading.Condition()
        self._busy = 0  # requests in flight + changes not yet delivered
        self._last = time.monotonic()
        self._hooks: dict[str, ResponseTarget] = {}
        self._state = SlackState(
            team_id=team_id,
            bot_user_id=bot_user_id,
            bot_id=bot_id,
            app_id=app_id,
            auto_users=auto_users,
            trigger_ttl=trigger_ttl,
            strict_triggers=strict_triggers,
            emit=self._emit,
        )
        self._server: LoopbackServer | None = None
        self._threads: list[threading.Thread] = []

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> LocalSlack:
        if self._server is None:
            self._server = LoopbackServer(self)
            with self._state.lock:
                self._state.origin = self.origin
            serve = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="local-slack"
            )
            serve.daemon = True
            deliver = threading.Thread(target=self._deliver, name="local-slack-changes", daemon=True)
            self._threads = [serve, deliver]
            for thread in self._threads:
                thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            self._queue.put(None)
            for thread in self._threads:
                thread.join(timeout=5)

    def reset(self) -> None:
        """Forget the workspace: messages, modals, homes, users, groups, triggers and response_urls."""
        with self._state.lock:
            self._state.clear()
            self._hooks = {}
            self.calls = []

    def __enter__(self) -> LocalSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def origin(self) -> str:
        if self._server is None:
            raise RuntimeError("LocalSlack is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def base_url(self) -> str:
        """For ``WebClient(base_url=...)`` / ``SLACK_API_URL``; ends with ``/api/`` like Slack's."""
        return f"{self.origin}/api/"

    # ---- listeners and settling ---------------------------------------------------------------
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` for every :class:`Change`; returns a function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _touch(self, delta: int) -> None:
        with self._activity:
            self._busy += delta
            self._last = time.monotonic()
            self._activity.notify_all()

    def _emit(self, change: Change) -> None:
        self._touch(+1)
        self._queue.put(change)

    def _deliver(self) -> None:
        while (change := self._queue.get()) is not None:
            for listener in list(self._listeners):
                try:
                    listener(change)
                except Exception:  # a broken printer must not stop the workspace
                    log.exception("shell change listener failed")
            self._touch(-1)

    def settle(self, quiet: float = 0.2, timeout: float = 5.0) -> bool:
        """Wait until no request is in flight, every change is delivered and nothing happened for
        ``quiet`` seconds (counted from now at the earliest). False when ``timeout`` ran out first."""
        start = time.monotonic()
        deadline = start + timeout
        with self._activity:
            while True:
                now = time.monotonic()
                idle = now - max(self._last, start)
                if self._busy == 0 and idle >= quiet:
                    return True
                if now >= deadline:
                    return False
                step = deadline - now if self._busy else min(deadline - now, quiet - idle)
                self._activity.wait(max(step, 0.005))

    # ---- workspace set-up and client-side actions --------------------------------------------
    def add_user(self, user_id: str, name: str, real_name: str | None = None, **extra: Any) -> Json:
        with self._state.lock:
            return dict(self._state.add_user(user_id, name, real_name, **extra))

    def add_channel(self, channel_id: str, name: str) -> None:
        with self._state.lock:
            self._state.channels[channel_id] = name.removeprefix("#")

    def add_usergroup(self, usergroup_id: str, users: list[str]) -> None:
        with self._state.lock:
            self._state.usergroups[usergroup_id] = list(users)

    def channel_name(self, channel_id: str) -> str:
        with self._state.lock:
            return self._state.channels.get(channel_id, channel_id)

    def dm_channel_id(self, user_id: str) -> str:
        return SlackState.dm_channel(user_id)

    def new_trigger_id(self, user: str = "") -> str:
        """A trigger_id for ``user``'s payload; views.open/push accept it once, within ``trigger_ttl``
        seconds, and stack its modal on that user's (default: the terminal person's)."""
        with self._state.lock:
            return self._state.new_trigger_id(user)

    def response_url(
        self,
        *,
        channel: str = "C0SHELL",
        user: str = "U0SHELL01",
        message_ts: str | None = None,
        ephemeral: bool = False,
    ) -> str:
        """A URL for a payload's ``response_url``: POSTs to it answer in ``channel`` (to ``user`` only
        unless ``response_type: in_channel``) or replace/delete the message ``message_ts``."""
        return self._register_hook(
            secrets.token_urlsafe(16), ResponseTarget(channel, user, message_ts, ephemeral)
        )

    def _register_hook(self, token: str, target: ResponseTarget) -> str:
        """Answer POSTs to ``/hooks/<token>`` for ``target`` (a fresh five uses and 30 minutes)."""
        with self._state.lock:
            self._hooks[token] = target
        return f"{self.origin}/hooks/{token}"

    def post_user_message(self, channel: str, user: str, text: str, thread_ts: str | None = None) -> str:
        """Store what a person typed (never reported as a change, never printed) and return its ts."""
        with self._state.lock:
            return self._state.post_user_message(channel, user, text, thread_ts)

    def apply_response(self, payload: Mapping[str, Any], *, channel: str, user: str) -> None:
        """Show a slash command's acknowledgement body like Slack does (ephemeral unless in_channel)."""
        with self._state.lock:
            self._state.apply_response(ResponseTarget(channel, user), payload)

    def close_modal(self, *, clear: bool = False) -> Json | None:
        """The person closed the top modal (``clear``: the whole stack); returns the closed view."""
        with self._state.lock:
            return self._state.close_modal(clear=clear)

    def replace_top_modal(self, view: Mapping[str, Any]) -> Json:
        """``response_action: update`` on a submission."""
        with self._state.lock:
            if not self._state.stack:
                return dict(self._state.open_modal(view))
            return dict(self._state.update_view(self._state.stack[-1], view))

    def push_modal(self, view: Mapping[str, Any]) -> Json:
        """``response_action: push`` on a submission."""
        with self._state.lock:
            return dict(self._state.open_modal(view, push=True))

    # ---- reading state ---------------------------------------------------------------------
    def messages(self, channel: str) -> list[Json]:
        """Messages in ``channel`` (a user id means the bot's DM with them), oldest first."""
        with self._state.lock:
            try:
                channel = self._state.resolve_channel(channel)
            except SlackError:  # a channel nobody posted in
                return []
            return [dict(m) for m in self._state.messages.get(channel, [])]

    def message(self, channel: str, ts: str) -> Json | None:
        with self._state.lock:
            found = self._state.find(channel, ts)
            return dict(found) if found else None

    def ephemeral(self, ts: str) -> Json | None:
        with self._state.lock:
            found = self._state.find_ephemeral(ts)
            return dict(found) if found else None

    def ephemerals(self) -> list[Json]:
        with self._state.lock:
            return [dict(e) for e in self._state.ephemerals]

    def modals(self) -> list[Json]:
        """The open modal stack, root first."""
        with self._state.lock:
            return [dict(v) for v in self._state.stack]

    def top_modal(self) -> Json | None:
        with self._state.lock:
            return dict(self._state.stack[-1]) if self._state.stack else None

    def view(self, view_id: str) -> Json | None:
        """An open modal or a published home view by id."""
        with self._state.lock:
            found = self._state.find_view(view_id)
            return dict(found) if found else None

    def home_view(self, user: str) -> Json | None:
        with self._state.lock:
            found = self._state.homes.get(user)
            return dict(found) if found else None

    # ---- HTTP ------------------------------------------------------------------------------
    def handle(self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes) -> Reply:
        """Answer one HTTP request: ``/api/<method>``, ``/hooks/<token>`` (a response_url) or
        ``/upload/v1/<token>`` (a file's bytes, step 2 of an upload)."""
        self._touch(+1)
        try:
            path = re.sub("/{2,}", "/", path)
            if path.startswith("/upload/v1/"):
                return self._upload(path.removeprefix("/upload/v1/"), body)
            args = parse_args(query, headers.get("content-type", ""), body)
            if path.startswith("/hooks/"):
                return self._hook(path.removeprefix("/hooks/"), args, headers)
            return self._api(path.removeprefix("/api/"), args, headers)
        finally:
            self._touch(-1)

    def _api(self, name: str, args: Json, headers: Mapping[str, str]) -> Reply:
        """One Web API call: recorded by name in :attr:`calls`, answered like Slack."""
        self.calls.append(name)
        return self._respond(name, args, headers)

    def _respond(self, name: str, args: Json, headers: Mapping[str, str]) -> Reply:
        payload = self._answer(name, headers, args)
        if not payload.get("ok"):
            self._emit(Change("api_error", name=name, text=str(payload.get("error"))))
        return Reply.json(payload)

    def auth_error(self, headers: Mapping[str, str], args: Mapping[str, Any]) -> str | None:
        """``not_authed`` / ``invalid_auth`` when the call does not carry the bot token, else None."""
        token = headers.get("authorization", "").removeprefix("Bearer ").strip() or args.get("token")
        if not token:
            return "not_authed"
        return None if token == self.bot_token or token in self._state.installed_tokens else "invalid_auth"

    def grant(
        self,
        code: str,
        client_id: str,
        client_secret: str,
        *,
        team_id: str | None,
        enterprise_id: str | None = None,
        scope: str = "commands,chat:write",
    ) -> str:
        """Let ``code`` be exchanged once, by that client, for a new bot token of ``team_id`` (None with
        ``enterprise_id``: an org-wide Enterprise Grid install); returns the token it will hand out."""
        with self._state.lock:
            return _oauth.grant(self._state, code, client_id, client_secret, team_id, enterprise_id, scope)

    def _answer(self, name: str, headers: Mapping[str, str], args: Json) -> Json:
        if name == "oauth.v2.access":
            args = _oauth.client_credentials(headers, args)
        elif (refused := self.auth_error(headers, args)) is not None:
            return {"ok": False, "error": refused}
        handler = METHODS.get(name)
        if handler is None:
            return {"ok": False, "error": "unknown_method"}
        try:
            with self._state.lock:
                return handler(self._state, args)
        except SlackError as err:
            extra: Json = {"response_metadata": {"messages": err.messages}} if err.messages else {}
            if err.code == "invalid_blocks" and err.messages:
                extra["errors"] = [m.removeprefix("[ERROR] ") for m in err.messages]
            return {"ok": False, "error": err.code, **extra}

    def _hook(self, token: str, args: Json, headers: Mapping[str, str]) -> Reply:
        """A POST to a response_url: five uses within 30 minutes, then 404 like Slack."""
        with self._state.lock:
            target = self._hooks.get(token)
            if target is None:
                return Reply.text(404, "no_service")
            if time.monotonic() - target.created > RESPONSE_URL_TTL:
                return Reply.text(404, "expired_url")
            if target.uses >= RESPONSE_URL_USES:
                return Reply.text(404, "used_url")
            target.uses += 1
            try:
                self._state.apply_response(target, args)
            except SlackError as err:
                self._emit(Change("api_error", name="response_url", text=err.code))
                return Reply.text(400, err.code)
        return Reply.text(200, "ok", "text/html")

    def _upload(self, token: str, body: bytes) -> Reply:
        """The upload URL's answer: ``OK - <bytes>`` like Slack's file service, or an error status."""
        try:
            with self._state.lock:
                received = _files.receive_upload(self._state, token, body)
        except SlackError as err:
            self._emit(Change("api_error", name="upload", text=err.code))
            return Reply.text(404 if err.code == "invalid_upload_url" else 400, err.code)
        return Reply.text(200, f"OK - {received['size']}")

    def files(self) -> list[Json]:
        """Every file uploaded (bytes under ``data``, None until they arrived), for tests and the shell."""
        with self._state.lock:
            return [dict(f) for f in self._state.files.values()]

    def crashed(self, method: str, path: str, trace: str) -> None:
        """An emulator bug while answering; the client got HTTP 500 (tests fail on it)."""
        log.error("local Slack emulator failed on %s %s\n%s", method, path, trace)
