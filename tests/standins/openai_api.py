"""The tests' OpenAI: the sandbox users drill on (:class:`bot.sandbox.SandboxOpenAI`) behind a layer that
validates every request and response against the official OpenAPI spec and injects faults.

There is one OpenAI fake: the sandbox answers every request; this layer (its ``middleware``) records the
calls, refuses requests the spec forbids, answers injected faults (status, delay, ``Retry-After``), may
corrupt an answer on purpose, and records every spec violation for the fixture to fail the test on.
Use with the real SDK::

    standin = OpenAIStandin().start()
    client = openai.OpenAI(api_key=standin.api_key, admin_api_key=standin.admin_key,
                           base_url=standin.base_url)
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.sandbox import SandboxOpenAI
from bot.sandbox.openai_keys import Key, ServiceAccount, rand
from bot.sandbox.openai_routes import Route, match
from bot.sandbox.openai_usage import UsageRecord
from bot.sandbox.openai_wire import Json, error, fold_query

from ._http import HttpRequest, Reply
from ._openai_spec import SpecValidator, ValidationIssue

__all__ = ["Fault", "OpenAICall", "OpenAIStandin", "ValidationIssue"]

_STATUS_ERRORS: dict[int, tuple[str, str | None, str]] = {
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "insufficient_permissions", "You have insufficient permissions."),
    404: ("invalid_request_error", None, "Not found."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again later."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}
_NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)


@dataclass
class OpenAICall:
    """One request the stand-in received. ``path`` is relative to ``/v1``."""

    method: str
    path: str
    query: dict[str, list[str]]  # ``name[]`` folded into ``name``; ``effective_at[gt]`` kept
    query_pairs: list[tuple[str, str]]
    json: Any
    headers: dict[str, str]
    status: int | None = None
    at: float = field(default_factory=time.time)


@dataclass
class Fault:
    pattern: re.Pattern[str]
    method: str | None
    status: int | None  # None: only delay, then answer normally
    remaining: int | None  # None: forever
    retry_after: float | None = None
    delay: float = 0.0
    code: str | None = None
    message: str | None = None


@dataclass
class _Corruption:
    pattern: re.Pattern[str]
    method: str | None
    mutate: Callable[[Any], Any]
    remaining: int | None


class OpenAIStandin:
    """The sandbox plus validation and faults; plain-Python state, safe to mutate between requests."""

    def __init__(
        self,
        *,
        admin_key: str = "sk-admin-standin-0123456789abcdefABCD",
        api_key: str = "sk-proj-standin-inference-key-0000LLM0",
        validate: bool = True,
    ) -> None:
        self.sandbox = SandboxOpenAI(admin_key, inference_key=api_key)
        self.sandbox.middleware = self._handle
        self.admin_key = admin_key
        self.api_key = api_key  # accepted by /models and /chat/completions, never listed
        self.validate = validate
        self._lock = threading.RLock()
        self._validator: SpecValidator | None = None
        self.reset()

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> OpenAIStandin:
        if self.validate and self._validator is None:
            self._validator = SpecValidator()  # ~1 s the first time in a process, then cached
        self.sandbox.start()
        return self

    def stop(self) -> None:
        self.sandbox.stop()

    def __enter__(self) -> OpenAIStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def origin(self) -> str:
        return self.sandbox.origin

    @property
    def base_url(self) -> str:
        """Pass as ``openai.OpenAI(base_url=...)``; like ``https://api.openai.com/v1``."""
        return self.sandbox.base_url

    def reset(self) -> None:
        """Forget all state, calls, faults and validation errors (the server keeps running)."""
        with self._lock:
            self.sandbox.reset()
            self.calls: list[OpenAICall] = []
            self.validation_errors: list[ValidationIssue] = []
            self.faults: list[Fault] = []
            self._corruptions: list[_Corruption] = []
            # the spec says deleting a service-account key is an error; the pinned SDK says it works
            self.service_account_key_delete_error = False

    # ---- the sandbox's state, seeded the way tests need it ------------------------------------
    @property
    def keys(self) -> dict[str, Key]:
        return self.sandbox.keys

    @property
    def service_accounts(self) -> dict[str, ServiceAccount]:
        return self.sandbox.service_accounts

    @property
    def usage(self) -> list[UsageRecord]:
        return self.sandbox.usage

    @property
    def default_user(self) -> Json:
        return self.sandbox.default_user

    @property
    def chat_reply(self) -> str | Callable[[Json], str]:
        return self.sandbox.chat_reply

    @chat_reply.setter
    def chat_reply(self, reply: str | Callable[[Json], str]) -> None:
        self.sandbox.chat_reply = reply

    def add_project(
        self,
        name: str = "Default project",
        *,
        project_id: str | None = None,
        created_at: int | None = None,
        status: str = "active",
    ) -> Json:
        pid = project_id or "proj_" + rand(24)
        return self.sandbox.add_project(pid, name, created_at=created_at, status=status)

    def add_service_account(
        self,
        project_id: str,
        name: str = "svc",
        *,
        role: str = "member",
        service_account_id: str | None = None,
    ) -> ServiceAccount:
        return self.sandbox.add_service_account(project_id, name, role=role, account_id=service_account_id)

    def add_key(
        self,
        project_id: str,
        name: str = "Secret key",
        value: str | None = None,
        *,
        owner: str = "user",
        user: Json | None = None,
        service_account_id: str | None = None,
        **fields: Any,
    ) -> Json:
        """Seed a live key (no audit event). ``owner``: "user" (``user`` dict or the default user) or
        "service_account" (``service_account_id``, else a new one); ``fields``: key_id, created_at,
        last_used_at, redacted_value, scopes, owner_project_access. Returns the API object plus
        ``value`` (the secret) and ``project_id``."""
        if owner == "service_account" or service_account_id:
            account = (
                self.service_accounts[service_account_id]
                if service_account_id
                else self.add_service_account(project_id, f"{name} owner")
            )
            owner_ref = account.owner_ref()
        else:
            owner_ref = {"type": "user", "user": dict(user or self.default_user)}
        key = self.sandbox.seed_key(project_id, name, owner=owner_ref, value=value, **fields)
        return {**key.to_api(), "value": key.value, "project_id": project_id}

    def add_usage(
        self,
        api_key_id: str,
        minute_ts: int,
        input_tokens: int,
        output_tokens: int,
        num_model_requests: int,
        **kwargs: Any,
    ) -> UsageRecord:
        """Usage of one key in one minute; ``kwargs``: model, project_id, user_id."""
        return self.sandbox.add_usage(
            api_key_id, minute_ts, input_tokens, output_tokens, num_model_requests, **kwargs
        )

    def add_audit_event(
        self, event_type: str, details: Json, *, project_id: str | None = None, **kwargs: Any
    ) -> Json:
        """An audit log event; ``kwargs``: effective_at, actor."""
        return self.sandbox.audit(event_type, details, project_id, **kwargs)

    def authenticates(self, secret: str) -> bool:
        """Would ``secret`` be accepted by the inference endpoints right now?"""
        return self.sandbox.authenticates(secret)

    # ---- faults and hooks --------------------------------------------------------------------
    def inject(
        self,
        path_regex: str,
        status: int | None = 429,
        *,
        times: int | None = 1,
        retry_after: float | None = None,
        delay: float = 0.0,
        method: str | None = None,
        code: str | None = None,
        message: str | None = None,
    ) -> Fault:
        """Answer the next ``times`` matching requests (``re.search`` on the path after ``/v1``)
        with ``status`` (after sleeping ``delay`` s). ``status=None`` only delays.
        ``retry_after`` sets ``retry-after-ms`` and ``Retry-After`` (integer >= 1, as the spec says)."""
        verb = method.upper() if method else None
        fault = Fault(re.compile(path_regex), verb, status, times, retry_after, delay, code, message)
        with self._lock:
            self.faults.append(fault)
        return fault

    def corrupt(
        self,
        path_regex: str,
        mutate: Callable[[Any], Any],
        *,
        times: int | None = 1,
        method: str | None = None,
    ) -> None:
        """Test hook: ``mutate(payload)`` edits (or returns a replacement for) the next matching
        JSON response before it is validated and sent, to prove validation catches drift."""
        verb = method.upper() if method else None
        with self._lock:
            self._corruptions.append(_Corruption(re.compile(path_regex), verb, mutate, times))

    def _take(self, items: list[Any], method: str, path: str) -> Any:
        with self._lock:
            for item in items:
                if item.pattern.search(path) and item.method in (None, method) and item.remaining != 0:
                    if item.remaining is not None:
                        item.remaining -= 1
                    return item
        return None

    # ---- assertions --------------------------------------------------------------------------
    def calls_to(self, path_regex: str, method: str | None = None) -> list[OpenAICall]:
        pattern = re.compile(path_regex)
        with self._lock:
            return [
                c
                for c in self.calls
                if pattern.search(c.path) and (method is None or c.method == method.upper())
            ]

    def take_validation_errors(self) -> list[ValidationIssue]:
        """Return and clear the recorded issues (for tests that provoke them on purpose)."""
        with self._lock:
            issues, self.validation_errors = self.validation_errors, []
        return issues

    def assert_no_validation_errors(self) -> None:
        with self._lock:
            issues = list(self.validation_errors)
        assert not issues, "OpenAI stand-in saw traffic that violates the spec:\n" + "\n".join(
            map(str, issues)
        )

    # ---- the layer in front of the sandbox ------------------------------------------------------
    def _record_issue(self, kind: str, method: str, path: str, status: int | None, errors: list[str]) -> None:
        if errors:
            with self._lock:
                self.validation_errors.append(ValidationIssue(kind, method, path, status, tuple(errors)))

    def _handle(self, req: HttpRequest, respond: Callable[[HttpRequest], Reply]) -> Reply:
        full = re.sub("/{2,}", "/", req.path)
        rel = full[3:] if full.startswith("/v1/") else full
        try:
            payload = json.loads(req.body) if req.body else None
        except ValueError:
            payload = None
        call = OpenAICall(req.method, rel, fold_query(req.query), list(req.query), payload, req.headers)
        with self._lock:
            self.calls.append(call)
        route, params = match(req.method, rel) if full.startswith("/v1/") else (None, {})
        if route is None:
            self._record_issue("unhandled", req.method, rel, 404, ["no sandbox route (is it in the spec?)"])
        reply = self._before(req, route, params, rel) or self._forward(req, respond, rel)
        reply = self._apply_corruption(req.method, rel, reply)
        if self._validator is not None and route is not None and route.spec_pattern is not None:
            errors = self._validator.validate_response(
                route.spec_pattern, req.method, rel, reply.status, reply.headers, reply.body
            )
            self._record_issue("response", req.method, rel, reply.status, errors)
        call.status = reply.status
        return reply

    def _forward(self, req: HttpRequest, respond: Callable[[HttpRequest], Reply], rel: str) -> Reply:
        try:
            return respond(req)
        except Exception as exc:  # a sandbox bug: the test fails on it, the client gets a 500
            self._record_issue("crash", req.method, rel, 500, [repr(exc)])
            raise

    def _before(
        self, req: HttpRequest, route: Route | None, params: dict[str, str], rel: str
    ) -> Reply | None:
        """What the layer answers itself: spec violations of the request, injected faults, quirks."""
        if route is None:
            return None
        if self._validator is not None and route.spec_pattern is not None:
            errors = self._validator.validate_request(
                route.spec_pattern, req.method, rel, req.query, req.headers, req.body
            )
            if errors:
                self._record_issue("request", req.method, rel, None, errors)
                if self._validator.is_security_error(errors):
                    return _error_reply(401, _NO_KEY)
                return _error_reply(400, "Invalid request: " + "; ".join(errors)[:2000])
        fault: Fault | None = self._take(self.faults, req.method, rel)
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.status is not None:
                return self._fault_reply(fault)
        key = self.keys.get(params.get("api_key_id", ""))
        if (
            self.service_account_key_delete_error
            and req.method == "DELETE"
            and key
            and key.service_account_id
        ):
            message = (
                "API keys owned by service accounts cannot be deleted; delete the service account instead."
            )
            return _error_reply(400, message, param="api_key_id")
        return None

    def _fault_reply(self, fault: Fault) -> Reply:
        assert fault.status is not None
        type_, code, message = _STATUS_ERRORS.get(
            fault.status, ("invalid_request_error", None, "Injected error.")
        )
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            headers["retry-after-ms"] = str(int(fault.retry_after * 1000))
            headers["Retry-After"] = str(max(1, int(-(-fault.retry_after // 1))))
        _, body = error(fault.status, fault.message or message, fault.code or code, type_=type_)
        return Reply.json(body, fault.status, headers)

    def _apply_corruption(self, method: str, rel: str, reply: Reply) -> Reply:
        corruption: _Corruption | None = self._take(self._corruptions, method, rel)
        if corruption is None:
            return reply
        payload = json.loads(reply.body)
        replaced = corruption.mutate(payload)
        payload = payload if replaced is None else replaced
        headers = {k: v for k, v in reply.headers.items() if k.lower() != "content-type"}
        return Reply.json(payload, reply.status, headers)


def _error_reply(status: int, message: str, param: str | None = None) -> Reply:
    _, body = error(status, message, param=param)
    return Reply.json(body, status)
