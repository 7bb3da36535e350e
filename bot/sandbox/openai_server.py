"""A local OpenAI-Admin-compatible provider: where example keys live, and what drills revoke.

It speaks the same wire format as ``https://api.openai.com/v1`` for exactly the endpoints keybot's
``openai`` provider calls (projects, project API keys, service accounts, audit logs, completions usage,
costs, and ``GET /models`` authenticated by the key itself), so a drill runs the real provider code
against sandbox copies and touches nothing real. State is in memory and starts from :meth:`seed`.
The endpoints themselves are in :mod:`bot.sandbox.openai_routes`, key records in
:mod:`bot.sandbox.openai_keys`.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from bot.sandbox.openai_keys import Key, SandboxKeySpec, SeededKey, new_key_value, rand
from bot.sandbox.openai_routes import MODELS as MODELS
from bot.sandbox.openai_routes import dispatch
from bot.sandbox.openai_wire import Json, Query, Traffic, error

__all__ = ["SandboxKeySpec", "SandboxOpenAI", "SeededKey", "new_key_value"]


class SandboxOpenAI:
    """The sandbox provider. ``start()`` serves it on 127.0.0.1:<free port>; ``base_url`` ends with /v1."""

    def __init__(self, admin_key: str | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self.admin_key = admin_key or new_key_value("sk-admin-")
        self.admin_key_id = "key_" + rand(16)
        self._clock = clock
        self._lock = threading.RLock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.projects: dict[str, Json] = {}
        self.keys: dict[str, Key] = {}
        self.service_accounts: dict[str, Json] = {}
        self.audit_log: list[Json] = []  # oldest first; the API lists newest first
        self.traffic: list[Traffic] = []
        self.owner = {"id": "user-" + rand(12), "email": "drill@keybot.invalid", "name": "Keybot Drill"}

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

    def _new_key(self, project: str, name: str, family: str, owner: Json, key_id: str | None = None) -> Key:
        key = Key(key_id or "key_" + rand(16), project, name, new_key_value(family), owner, self.now())
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
            return dispatch(self, method, path, query, body, token)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, sandbox: SandboxOpenAI) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.sandbox = sandbox


class _Handler(BaseHTTPRequestHandler):
    """Parses the request (``name[]`` query arrays folded into ``name``) and writes the JSON answer."""

    disable_nagle_algorithm = True  # else every reply on a kept-alive connection waits ~40 ms for an ACK

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
