"""A local OpenAI-Admin-compatible provider: where example keys live, and what drills revoke.

It speaks the same wire format as ``https://api.openai.com/v1`` for exactly the endpoints keybot's
``openai`` provider calls (projects, project API keys, service accounts, audit logs, completions usage,
costs, and ``GET /models`` authenticated by the key itself), so a drill runs the real provider code
against sandbox copies and touches nothing real. State is in memory and starts from :meth:`seed`.
It is also the only OpenAI fake of the tests, which put a spec-validating, fault-injecting layer in
front of it (:attr:`SandboxOpenAI.middleware`). The endpoints are in :mod:`bot.sandbox.openai_routes`,
key records in :mod:`bot.sandbox.openai_keys`.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from bot.sandbox.loopback import BackgroundServer, HttpRequest, Reply
from bot.sandbox.openai_keys import Key, SandboxKeySpec, SeededKey, ServiceAccount, new_key_value, rand
from bot.sandbox.openai_routes import MODELS as MODELS
from bot.sandbox.openai_routes import dispatch
from bot.sandbox.openai_usage import BadParameter, UsageRecord
from bot.sandbox.openai_wire import ApiCall, Json, error, fold_query

__all__ = ["Middleware", "SandboxKeySpec", "SandboxOpenAI", "SeededKey", "new_key_value"]

log = logging.getLogger(__name__)

Middleware = Callable[[HttpRequest, Callable[[HttpRequest], Reply]], Reply]
"""``middleware(request, respond)``: sees every request and decides what to answer (tests: validation)."""


class SandboxOpenAI:
    """The sandbox provider. ``start()`` serves it on 127.0.0.1:<free port>; ``base_url`` ends with /v1."""

    def __init__(
        self,
        admin_key: str | None = None,
        *,
        inference_key: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.admin_key = admin_key or new_key_value("sk-admin-")
        self.inference_key = inference_key  # accepted by /models and /chat/completions, never listed
        self._clock = clock
        self._lock = threading.RLock()
        self._server = BackgroundServer(self.serve, on_crash=self._crashed)
        self.middleware: Middleware | None = None
        self.reset()

    def reset(self) -> None:
        """Forget every project, key, account, event and usage record (the server keeps running)."""
        with self._lock:
            self.admin_key_id = "key_" + rand(16)
            self.projects: dict[str, Json] = {}
            self.keys: dict[str, Key] = {}
            self.deleted_keys: dict[str, Key] = {}
            self.service_accounts: dict[str, ServiceAccount] = {}
            self.audit_log: list[Json] = []  # oldest first; the API lists newest first
            self.usage: list[UsageRecord] = []
            self.chat_reply: str | Callable[[Json], str] = "This is a canned answer from the sandbox."
            self.default_user: Json = {
                "id": "user-" + rand(12),
                "email": "drill@keybot.invalid",
                "name": "Keybot Drill",
                "created_at": self.now(),
                "role": "owner",
            }

    # ---- lifecycle -----------------------------------------------------------------------------
    def start(self) -> SandboxOpenAI:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> SandboxOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def origin(self) -> str:
        if not self._server.running:
            raise RuntimeError("sandbox OpenAI server is not started")
        return self._server.origin

    @property
    def base_url(self) -> str:
        """Pass as ``openai.OpenAI(base_url=...)``; like ``https://api.openai.com/v1``."""
        return f"{self.origin}/v1"

    # ---- state ---------------------------------------------------------------------------------
    def now(self) -> int:
        return int(self._clock())

    def add_project(
        self,
        project_id: str,
        name: str | None = None,
        *,
        created_at: int | None = None,
        status: str = "active",
    ) -> Json:
        """The project (created if new); returns its API object."""
        with self._lock:
            if project_id not in self.projects:
                self.projects[project_id] = {
                    "object": "organization.project",
                    "id": project_id,
                    "name": name or project_id,
                    "created_at": self.now() if created_at is None else created_at,
                    "archived_at": None,
                    "status": status,
                    "external_key_id": None,
                }
            return dict(self.projects[project_id])

    def add_service_account(
        self, project_id: str, name: str, *, role: str = "member", account_id: str | None = None
    ) -> ServiceAccount:
        with self._lock:
            self._require_project(project_id)
            account = ServiceAccount(account_id or "svc_acct_" + rand(16), project_id, name, role, self.now())
            self.service_accounts[account.id] = account
            return account

    def add_key(self, project: str, name: str, key_id: str | None = None) -> tuple[str, str]:
        """A user-owned project key (created on the fly with its project); returns (key id, value)."""
        with self._lock:
            self.add_project(project)
            key = self.seed_key(project, name, key_id=key_id, audit=True)
        return key.id, key.value

    def seed_key(
        self,
        project_id: str,
        name: str,
        *,
        owner: Json | None = None,
        value: str | None = None,
        key_id: str | None = None,
        created_at: int | None = None,
        audit: bool = False,
        **fields: Any,
    ) -> Key:
        """A live key in an existing project, owned by ``owner`` (default: :attr:`default_user`).

        ``fields`` are further :class:`Key` fields (scopes, last_used_at, redacted_value, ...); ``audit``
        writes ``api_key.created`` as the API does when it mints one.
        """
        with self._lock:
            self._require_project(project_id)
            owner = owner or {"type": "user", "user": dict(self.default_user)}
            family = "sk-svcacct-" if owner.get("type") == "service_account" else "sk-proj-"
            key = Key(
                key_id or "key_" + rand(16),
                project_id,
                name,
                value or new_key_value(family),
                owner,
                self.now() if created_at is None else created_at,
                **fields,
            )
            self.keys[key.id] = key
            if audit:
                self.audit("api_key.created", {"id": key.id, "data": {"scopes": key.scopes}}, project_id)
            return key

    def seed(self, keys: list[SandboxKeySpec]) -> list[SeededKey]:
        """Create the example keys; the values are random and only returned here."""
        seeded = []
        for spec in keys:
            key_id, value = self.add_key(spec.project, spec.name, spec.key_id)
            seeded.append(SeededKey(key_id, spec.name, spec.project, value))
        return seeded

    def delete_key(self, key: Key) -> None:
        with self._lock:
            key.deleted_at = self.now()
            self.deleted_keys[key.id] = self.keys.pop(key.id)
            self.audit("api_key.deleted", {"id": key.id}, key.project_id)

    def add_usage(
        self,
        api_key_id: str,
        at: int,
        input_tokens: int,
        output_tokens: int,
        requests: int,
        *,
        model: str = "gpt-4o-mini",
        project_id: str | None = None,
        user_id: str | None = None,
    ) -> UsageRecord:
        """Synthetic usage of one key in the minute of ``at`` (a drill's leaked key doing 10x its traffic)."""
        with self._lock:
            key = self.keys.get(api_key_id) or self.deleted_keys.get(api_key_id)
            project = project_id or (key.project_id if key else None)
            record = UsageRecord(
                api_key_id, project, at - at % 60, input_tokens, output_tokens, requests, model, user_id
            )
            self.usage.append(record)
            return record

    def add_traffic(
        self,
        key_id: str,
        *,
        requests: int,
        input_tokens: int = 0,
        output_tokens: int = 0,
        at: int | None = None,
        model: str = "gpt-4o-mini",
    ) -> None:
        """:meth:`add_usage` by keyword, at now unless ``at`` is given."""
        when = self.now() if at is None else at
        self.add_usage(key_id, when, input_tokens, output_tokens, requests, model=model)

    def audit(
        self,
        event_type: str,
        details: Json,
        project: str | None,
        *,
        effective_at: int | None = None,
        actor: Json | None = None,
    ) -> Json:
        """Append an audit log event; by default the admin key's, now."""
        with self._lock:
            event: Json = {
                "id": f"audit_log-{len(self.audit_log):08d}{secrets.token_hex(4)}",  # sorts in log order
                "type": event_type,
                "effective_at": self.now() if effective_at is None else effective_at,
                "actor": actor or self._admin_actor(),
                event_type: details,
            }
            if project:
                event["project"] = {
                    "id": project,
                    "name": self.projects.get(project, {}).get("name", project),
                }
            self.audit_log.append(event)
            return event

    def key_by_value(self, value: str) -> Key | None:
        now = self.now()
        with self._lock:
            found = (k for k in self.keys.values() if hmac.compare_digest(k.value, value) and k.live(now))
            return next(found, None)

    def authenticates(self, value: str) -> bool:
        """Would ``value`` be accepted by the inference endpoints right now?"""
        with self._lock:
            return self._is_inference_key(value) or self.key_by_value(value) is not None

    def authorizes(self, auth: str, token: str) -> bool:
        """May ``token`` call a route of kind ``auth``? A key that may is marked used now."""
        if auth == "admin":
            return hmac.compare_digest(token.encode(), self.admin_key.encode())
        if self._is_inference_key(token):
            return True
        key = self.key_by_value(token)
        if key is not None:
            key.last_used_at = self.now()
        return key is not None

    def _is_inference_key(self, token: str) -> bool:
        return self.inference_key is not None and hmac.compare_digest(token, self.inference_key)

    def _require_project(self, project_id: str) -> None:
        if project_id not in self.projects:
            raise KeyError(f"unknown project {project_id!r}; add_project() first")

    def _admin_actor(self) -> Json:
        user = {k: self.default_user[k] for k in ("id", "email")}
        return {"type": "api_key", "api_key": {"id": self.admin_key_id, "type": "user", "user": user}}

    # ---- HTTP ----------------------------------------------------------------------------------
    def serve(self, request: HttpRequest) -> Reply:
        """The server's entry point: through :attr:`middleware` when one is set, else :meth:`respond`."""
        middleware = self.middleware
        return middleware(request, self.respond) if middleware is not None else self.respond(request)

    def respond(self, request: HttpRequest) -> Reply:
        """One request → its answer, under the state lock: requests apply one at a time."""
        path = re.sub("/{2,}", "/", request.path)
        if not path.startswith("/v1/"):
            status, payload = error(404, f"Invalid URL ({request.method} {path})")
            return Reply.json(payload, status)
        try:
            body = json.loads(request.body) if request.body else None
        except ValueError:
            status, payload = error(400, "We could not parse the JSON body of your request.")
            return Reply.json(payload, status)
        token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        call = ApiCall(request.method, path[3:], fold_query(request.query), request.query, body, token)
        try:
            with self._lock:
                status, payload = dispatch(self, call)
        except BadParameter as exc:
            status, payload = error(400, str(exc), param=exc.param)
        except ValueError as exc:  # e.g. limit=abc
            status, payload = error(400, f"Invalid parameter value ({type(exc).__name__}).")
        return Reply.json(payload, status)

    def _crashed(self, request: HttpRequest, trace: str) -> None:
        log.error("sandbox OpenAI failed on %s %s:\n%s", request.method, request.path, trace)
