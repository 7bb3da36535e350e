"""A local OpenAI-Admin-compatible provider: where example keys live, and what drills revoke.

It speaks the same wire format as ``https://api.openai.com/v1`` for exactly the endpoints keybot's
``openai`` provider calls (projects, project API keys, service accounts, audit logs, completions usage,
costs, and ``GET /models`` authenticated by the key itself), so a drill runs the real provider code
against sandbox copies and touches nothing real. State is in memory and starts from :meth:`seed`.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from bot.sandbox.openai_wire import Json, Query, Traffic, audit_matches, buckets, error, one, page
from bot.secrets import redacted_form

__all__ = ["SandboxKeySpec", "SandboxOpenAI", "SeededKey", "new_key_value"]

_CHARS = string.ascii_letters + string.digits + "-_"
_ALNUM = string.ascii_letters + string.digits
MODELS = ("gpt-4o-mini", "gpt-4o")


def _rand(n: int, alphabet: str = _ALNUM) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def new_key_value(family: str = "sk-proj-") -> str:
    """A fake key in OpenAI's current shape: family + 74 chars + ``T3BlbkFJ`` + 74 chars (random)."""
    return f"{family}{_rand(74, _CHARS)}T3BlbkFJ{_rand(74, _CHARS)}"


@dataclass(frozen=True)
class SandboxKeySpec:
    """An example key to create: its name, the project id it lives in, and optionally its key id."""

    name: str
    project: str
    key_id: str | None = None


@dataclass(frozen=True)
class SeededKey:
    key_id: str
    name: str
    project: str
    value: str = field(repr=False)  # the secret: goes to the sandbox Vault, never to a log


@dataclass
class _Key:
    id: str
    project: str
    name: str
    value: str = field(repr=False)
    owner: Json
    created_at: int
    scopes: list[str] = field(default_factory=list)
    last_used_at: int | None = None

    def to_api(self) -> Json:
        return {
            "object": "organization.project.api_key",
            "id": self.id,
            "name": self.name,
            "redacted_value": redacted_form(self.value),
            "created_at": self.created_at,
            "last_used_at": self.last_used_at,
            "owner_project_access": "active",
            "owner": self.owner,
        }


class SandboxOpenAI:
    """The sandbox provider. ``start()`` serves it on 127.0.0.1:<free port>; ``base_url`` ends with /v1."""

    def __init__(self, admin_key: str | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self.admin_key = admin_key or new_key_value("sk-admin-")
        self.admin_key_id = "key_" + _rand(16)
        self._clock = clock
        self._lock = threading.RLock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.projects: dict[str, Json] = {}
        self.keys: dict[str, _Key] = {}
        self.service_accounts: dict[str, Json] = {}
        self.audit_log: list[Json] = []  # oldest first; the API lists newest first
        self.traffic: list[Traffic] = []
        self.owner = {"id": "user-" + _rand(12), "email": "drill@keybot.invalid", "name": "Keybot Drill"}

    # ---- lifecycle -----------------------------------------------------------------------------
    def start(self) -> SandboxOpenAI:
        if self._server is None:
            self._server = _Server(self)
            self._thread = threading.Thread(
                target=self._server.serve_forever, name="sandbox-openai", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> SandboxOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("sandbox OpenAI server is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    # ---- state ---------------------------------------------------------------------------------
    def now(self) -> int:
        return int(self._clock())

    def add_project(self, project_id: str, name: str | None = None) -> Json:
        with self._lock:
            if project_id not in self.projects:
                self.projects[project_id] = {
                    "object": "organization.project",
                    "id": project_id,
                    "name": name or project_id,
                    "created_at": self.now(),
                    "archived_at": None,
                    "status": "active",
                }
            return dict(self.projects[project_id])

    def add_key(self, project: str, name: str, key_id: str | None = None) -> tuple[str, str]:
        """A user-owned project key (created on the fly with its project); returns (key id, value)."""
        with self._lock:
            self.add_project(project)
            owner = {"type": "user", "user": {**self.owner, "created_at": self.now(), "role": "owner"}}
            key = self._new_key(project, name, "sk-proj-", owner, key_id)
        return key.id, key.value

    def seed(self, keys: list[SandboxKeySpec]) -> list[SeededKey]:
        """Create the example keys; the values are random and only returned here."""
        seeded = []
        for spec in keys:
            key_id, value = self.add_key(spec.project, spec.name, spec.key_id)
            seeded.append(SeededKey(key_id, spec.name, spec.project, value))
        return seeded

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
        """Synthetic usage for a drill (say, a leaked key suddenly doing 10x its usual traffic)."""
        with self._lock:
            key = self.keys.get(key_id)
            minute = (self.now() if at is None else at) // 60 * 60
            project = key.project if key else ""
            self.traffic.append(
                Traffic(key_id, project, minute, requests, input_tokens, output_tokens, model)
            )

    def authenticates(self, value: str) -> bool:
        with self._lock:
            return any(hmac.compare_digest(k.value, value) for k in self.keys.values())

    def _new_key(self, project: str, name: str, family: str, owner: Json, key_id: str | None = None) -> _Key:
        key = _Key(key_id or "key_" + _rand(16), project, name, new_key_value(family), owner, self.now())
        self.keys[key.id] = key
        self._audit("api_key.created", {"id": key.id, "data": {"scopes": key.scopes}}, project)
        return key

    def _audit(self, event_type: str, details: Json, project: str | None) -> None:
        actor = {
            "type": "api_key",
            "api_key": {
                "id": self.admin_key_id,
                "type": "user",
                "user": {k: self.owner[k] for k in ("id", "email")},
            },
        }
        event: Json = {
            "id": f"audit_log-{len(self.audit_log):08d}{secrets.token_hex(4)}",  # sorts in log order
            "type": event_type,
            "effective_at": self.now(),
            "actor": actor,
            event_type: details,
        }
        if project:
            event["project"] = {"id": project, "name": self.projects.get(project, {}).get("name", project)}
        self.audit_log.append(event)

    # ---- HTTP dispatch -------------------------------------------------------------------------
    def handle(self, method: str, path: str, query: Query, body: Any, token: str) -> tuple[int, Json]:
        """One request → (status, JSON body), under the state lock: requests apply one at a time."""
        with self._lock:
            for verb, pattern, name, auth in _ROUTES:
                match = pattern.fullmatch(path)
                if verb != method or not match:
                    continue
                if auth == "admin" and not hmac.compare_digest(token.encode(), self.admin_key.encode()):
                    return self._unauthorized(token)
                if auth == "key" and not self._use_key(token):
                    return self._unauthorized(token)
                handler: Callable[..., tuple[int, Json]] = getattr(self, name)
                return handler(query, body if isinstance(body, dict) else {}, **match.groupdict())
        return error(404, f"Invalid URL ({method} {path})")

    def _unauthorized(self, token: str) -> tuple[int, Json]:
        shown = f"***{token[-4:]}" if len(token) > 12 else "***"  # like the real API: never the whole key
        return error(401, f"Incorrect API key provided: {shown}.", code="invalid_api_key")

    def _use_key(self, token: str) -> bool:
        key = next((k for k in self.keys.values() if hmac.compare_digest(k.value, token)), None)
        if key is not None:
            key.last_used_at = self.now()
        return key is not None

    def _key_in(self, project_id: str, key_id: str) -> _Key | None:
        key = self.keys.get(key_id)
        return key if key is not None and key.project == project_id else None

    def _h_list_projects(self, query: Query, body: Json) -> tuple[int, Json]:
        archived = one(query, "include_archived") == "true"
        items = [p for p in self.projects.values() if archived or p["status"] == "active"]
        return 200, page(items, query)

    def _h_get_project(self, query: Query, body: Json, project_id: str) -> tuple[int, Json]:
        project = self.projects.get(project_id)
        return (200, project) if project else error(404, f"No such project: {project_id}", "not_found")

    def _h_list_keys(self, query: Query, body: Json, project_id: str) -> tuple[int, Json]:
        if project_id not in self.projects:
            return error(404, f"No such project: {project_id}", "not_found")
        return 200, page([k.to_api() for k in self.keys.values() if k.project == project_id], query)

    def _h_get_key(self, query: Query, body: Json, project_id: str, key_id: str) -> tuple[int, Json]:
        key = self._key_in(project_id, key_id)
        return (200, key.to_api()) if key else error(404, f"No such API key: {key_id}", "not_found")

    def _h_delete_key(self, query: Query, body: Json, project_id: str, key_id: str) -> tuple[int, Json]:
        key = self._key_in(project_id, key_id)
        if key is None:
            return error(404, f"No such API key: {key_id}", "not_found")
        del self.keys[key.id]
        self._audit("api_key.deleted", {"id": key.id}, project_id)
        return 200, {"object": "organization.project.api_key.deleted", "id": key.id, "deleted": True}

    def _h_update_key(self, query: Query, body: Json, project_id: str, key_id: str) -> tuple[int, Json]:
        key = self._key_in(project_id, key_id)
        if key is None:
            return error(404, f"No such API key: {key_id}", "not_found")
        scopes = body.get("scopes")
        if not isinstance(scopes, list):
            return error(400, "Provide scopes (array).", param="scopes")
        key.scopes = [str(s) for s in scopes]
        self._audit(
            "api_key.updated", {"id": key.id, "changes_requested": {"scopes": key.scopes}}, project_id
        )
        return 200, key.to_api()

    def _h_list_accounts(self, query: Query, body: Json, project_id: str) -> tuple[int, Json]:
        if project_id not in self.projects:
            return error(404, f"No such project: {project_id}", "not_found")
        items = [sa for sa in self.service_accounts.values() if sa["_project"] == project_id]
        return 200, page([_public(sa) for sa in items], query)

    def _h_create_account(self, query: Query, body: Json, project_id: str) -> tuple[int, Json]:
        if project_id not in self.projects:
            return error(404, f"No such project: {project_id}", "not_found")
        if not isinstance(body.get("name"), str) or not body["name"]:
            return error(400, "Missing required parameter: 'name'.", param="name")
        only = bool(body.get("create_service_account_only"))
        sa: Json = {
            "object": "organization.project.service_account",
            "id": "svc_acct_" + _rand(16),
            "name": body["name"],
            "role": "none" if only else "member",
            "created_at": self.now(),
            "_project": project_id,
        }
        self.service_accounts[sa["id"]] = sa
        self._audit("service_account.created", {"id": sa["id"], "data": {"role": sa["role"]}}, project_id)
        if only:
            return 200, {**_public(sa), "api_key": None}
        owner_sa = {k: sa[k] for k in ("id", "name", "created_at")} | {"role": "member"}
        owner = {"type": "service_account", "service_account": owner_sa}
        key = self._new_key(project_id, "Secret Key", "sk-svcacct-", owner)
        api_key = {
            "object": "organization.project.service_account.api_key",
            "id": key.id,
            "name": key.name,
            "created_at": key.created_at,
            "value": key.value,  # shown once, exactly like the real API
        }
        return 200, {**_public(sa), "api_key": api_key}

    def _h_get_account(self, query: Query, body: Json, project_id: str, account_id: str) -> tuple[int, Json]:
        sa = self.service_accounts.get(account_id)
        if sa is None or sa["_project"] != project_id:
            return error(404, f"No such service account: {account_id}", "not_found")
        return 200, _public(sa)

    def _h_delete_account(
        self, query: Query, body: Json, project_id: str, account_id: str
    ) -> tuple[int, Json]:
        status, found = self._h_get_account(query, body, project_id, account_id)
        if status != 200:
            return status, found
        for key in [
            k for k in self.keys.values() if k.owner.get("service_account", {}).get("id") == account_id
        ]:
            del self.keys[key.id]
            self._audit("api_key.deleted", {"id": key.id}, project_id)
        del self.service_accounts[account_id]
        self._audit("service_account.deleted", {"id": account_id}, project_id)
        return 200, {
            "object": "organization.project.service_account.deleted",
            "id": account_id,
            "deleted": True,
        }

    def _h_audit_logs(self, query: Query, body: Json) -> tuple[int, Json]:
        return 200, page([e for e in reversed(self.audit_log) if audit_matches(e, query)], query)

    def _h_usage_completions(self, query: Query, body: Json) -> tuple[int, Json]:
        return buckets(self.traffic, query, now=self.now(), costs=False)

    def _h_costs(self, query: Query, body: Json) -> tuple[int, Json]:
        return buckets(self.traffic, query, now=self.now(), costs=True)

    def _h_models(self, query: Query, body: Json) -> tuple[int, Json]:
        data = [{"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "system"} for m in MODELS]
        return 200, {"object": "list", "data": data}


def _public(sa: Json) -> Json:
    return {k: v for k, v in sa.items() if not k.startswith("_")}


_P = "/v1/organization/projects/(?P<project_id>[^/]+)"
_ROUTES: tuple[tuple[str, re.Pattern[str], str, str], ...] = tuple(
    (verb, re.compile(pattern), name, auth)
    for verb, pattern, name, auth in (
        ("GET", "/v1/organization/projects", "_h_list_projects", "admin"),
        ("GET", _P, "_h_get_project", "admin"),
        ("GET", _P + "/api_keys", "_h_list_keys", "admin"),
        ("GET", _P + "/api_keys/(?P<key_id>[^/]+)", "_h_get_key", "admin"),
        ("DELETE", _P + "/api_keys/(?P<key_id>[^/]+)", "_h_delete_key", "admin"),
        ("POST", _P + "/api_keys/(?P<key_id>[^/]+)", "_h_update_key", "admin"),
        ("GET", _P + "/service_accounts", "_h_list_accounts", "admin"),
        ("POST", _P + "/service_accounts", "_h_create_account", "admin"),
        ("GET", _P + "/service_accounts/(?P<account_id>[^/]+)", "_h_get_account", "admin"),
        ("DELETE", _P + "/service_accounts/(?P<account_id>[^/]+)", "_h_delete_account", "admin"),
        ("GET", "/v1/organization/audit_logs", "_h_audit_logs", "admin"),
        ("GET", "/v1/organization/usage/completions", "_h_usage_completions", "admin"),
        ("GET", "/v1/organization/costs", "_h_costs", "admin"),
        ("GET", "/v1/models", "_h_models", "key"),
    )
)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, sandbox: SandboxOpenAI) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.sandbox = sandbox


class _Handler(BaseHTTPRequestHandler):
    """Parses the request (``name[]`` query arrays folded into ``name``) and writes the JSON answer."""

    server: _Server
    protocol_version = "HTTP/1.1"

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        query: Query = {}
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            query.setdefault(name.removesuffix("[]"), []).append(value)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        path = re.sub("/{2,}", "/", parts.path)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            status, payload = error(400, "We could not parse the JSON body of your request.")
        else:
            status, payload = self._answer(path, query, body, token)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _answer(self, path: str, query: Query, body: Any, token: str) -> tuple[int, Json]:
        try:
            return self.server.sandbox.handle(self.command, path, query, body, token)
        except ValueError as exc:  # e.g. limit=abc
            return error(400, f"Invalid parameter value ({type(exc).__name__}).")
        except Exception as exc:  # a sandbox bug must answer like a server error, not hang the client
            return error(500, f"The sandbox failed ({type(exc).__name__}).", type_="server_error")

    do_GET = do_POST = do_DELETE = _dispatch

    def log_message(self, format: str, *args: Any) -> None:  # request lines could carry ids; stay quiet
        return
