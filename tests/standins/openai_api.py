"""Local stand-in for the OpenAI Admin API (keys, service accounts, audit logs, usage, costs),
``/models`` and ``/chat/completions``; every request and response is validated against the
official OpenAPI spec. Routes and state handlers live in :mod:`tests.standins._openai_routes`.

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

from ._http import BackgroundServer, HttpRequest, Reply
from ._openai_routes import ROUTES, Route, RouteHandlers
from ._openai_spec import SpecValidator, ValidationIssue
from ._openai_state import error_body, query_dict
from ._openai_usage import UsageRecord

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


class OpenAIStandin(RouteHandlers):
    """Stand-in server; plain-Python state, safe to mutate from tests between requests."""

    def __init__(
        self,
        *,
        admin_key: str = "sk-admin-standin-0123456789abcdefABCD",
        api_key: str = "sk-proj-standin-inference-key-0000LLM0",
        validate: bool = True,
    ) -> None:
        self.admin_key = admin_key
        self.api_key = api_key  # accepted by /models and /chat/completions, never listed
        self.validate = validate
        self._lock = threading.RLock()
        self._server = BackgroundServer(self._handle, on_crash=self._crashed)
        self._validator: SpecValidator | None = None
        self.reset()

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> OpenAIStandin:
        if self.validate and self._validator is None:
            self._validator = SpecValidator()  # ~1 s the first time in a process, then cached
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> OpenAIStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def origin(self) -> str:
        return self._server.origin

    @property
    def base_url(self) -> str:
        """Pass as ``openai.OpenAI(base_url=...)``; like ``https://api.openai.com/v1``."""
        return f"{self._server.origin}/v1"

    def reset(self) -> None:
        """Forget all state, calls, faults and validation errors (the server keeps running)."""
        with self._lock:
            self.now: Callable[[], int] = lambda: int(time.time())  # replace to freeze the clock
            self.calls: list[OpenAICall] = []
            self.validation_errors: list[ValidationIssue] = []
            self.faults: list[Fault] = []
            self._corruptions: list[_Corruption] = []
            self.usage: list[UsageRecord] = []
            self.chat_reply: str | Callable[[dict[str, Any]], str] = (
                "This is a canned answer from the OpenAI stand-in."
            )
            # the spec says deleting a service-account key is an error; the pinned SDK says it works
            self.service_account_key_delete_error = False
            self.reset_state()

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
        fault = Fault(
            re.compile(path_regex),
            method.upper() if method else None,
            status,
            times,
            retry_after,
            delay,
            code,
            message,
        )
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
        with self._lock:
            self._corruptions.append(
                _Corruption(re.compile(path_regex), method.upper() if method else None, mutate, times)
            )

    @staticmethod
    def _take(items: list[Any], method: str, path: str) -> Any:
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

    # ---- HTTP --------------------------------------------------------------------------------
    def _match(self, method: str, path: str) -> tuple[Route | None, dict[str, str]]:
        for route in ROUTES:
            if route.method == method and (m := route.regex.fullmatch(path)):
                return route, m.groupdict()
        return None, {}

    def _record_issue(self, kind: str, method: str, path: str, status: int | None, errors: list[str]) -> None:
        if errors:
            with self._lock:
                self.validation_errors.append(ValidationIssue(kind, method, path, status, tuple(errors)))

    def _crashed(self, req: HttpRequest, trace: str) -> None:
        self._record_issue("crash", req.method, req.path, 500, [trace])

    def _handle(self, req: HttpRequest) -> Reply:
        full = re.sub("/{2,}", "/", req.path)
        rel = full[3:] if full.startswith("/v1/") else full
        try:
            payload = req.json()
        except ValueError:
            payload = None
        call = OpenAICall(req.method, rel, query_dict(req.query), list(req.query), payload, req.headers)
        with self._lock:
            self.calls.append(call)
        route, params = self._match(req.method, rel) if full.startswith("/v1/") else (None, {})
        if route is None:
            self._record_issue("unhandled", req.method, rel, 404, ["no stand-in route (is it in the spec?)"])
            call.status = 404
            return Reply.json(error_body(f"Invalid URL ({req.method} {full})"), 404)

        reply = self._answer(req, route, params, rel, call)
        reply = self._apply_corruption(req.method, rel, reply)
        if self._validator is not None and route.spec_pattern is not None:
            errors = self._validator.validate_response(
                route.spec_pattern, req.method, rel, reply.status, reply.headers, reply.body
            )
            self._record_issue("response", req.method, rel, reply.status, errors)
        call.status = reply.status
        return reply

    def _answer(
        self, req: HttpRequest, route: Route, params: dict[str, str], rel: str, call: OpenAICall
    ) -> Reply:
        if self._validator is not None and route.spec_pattern is not None:
            errors = self._validator.validate_request(
                route.spec_pattern, req.method, rel, req.query, req.headers, req.body
            )
            if errors:
                self._record_issue("request", req.method, rel, None, errors)
                if self._validator.is_security_error(errors):
                    return Reply.json(
                        error_body(
                            "You didn't provide an API key. You need to provide your API key in an "
                            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
                        ),
                        401,
                    )
                return Reply.json(error_body("Invalid request: " + "; ".join(errors)[:2000]), 400)
        with self._lock:
            fault: Fault | None = self._take(self.faults, req.method, rel)
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.status is not None:
                return self._fault_reply(fault)
        token = req.headers.get("authorization", "").removeprefix("Bearer ").strip()
        with self._lock:
            if not self._authorized(route.auth, token):
                shown = self._redact_for_error(token)
                return Reply.json(
                    error_body(
                        f"Incorrect API key provided: {shown}. You can find your API key at "
                        "https://platform.openai.com/account/api-keys.",
                        code="invalid_api_key",
                    ),
                    401,
                )
            handler: Callable[..., Reply] = getattr(self, route.handler)
            return handler(call, token=token, **params)

    def _fault_reply(self, fault: Fault) -> Reply:
        assert fault.status is not None
        type_, code, message = _STATUS_ERRORS.get(
            fault.status, ("invalid_request_error", None, "Injected error.")
        )
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            headers["retry-after-ms"] = str(int(fault.retry_after * 1000))
            headers["Retry-After"] = str(max(1, int(-(-fault.retry_after // 1))))
        body = error_body(fault.message or message, type_, code=fault.code or code)
        return Reply.json(body, fault.status, headers)

    def _apply_corruption(self, method: str, rel: str, reply: Reply) -> Reply:
        with self._lock:
            corruption: _Corruption | None = self._take(self._corruptions, method, rel)
        if corruption is None:
            return reply
        payload = json.loads(reply.body)
        replaced = corruption.mutate(payload)
        payload = payload if replaced is None else replaced
        return Reply.json(
            payload, reply.status, {k: v for k, v in reply.headers.items() if k.lower() != "content-type"}
        )
