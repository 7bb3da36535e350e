"""Timing hooks on the HTTP clients keybot hands to the OpenAI SDK and to hvac.

Each one sits at the single place its library sends a request (``httpx2.Client.send`` for the SDK, the
requests adapter for hvac), so every attempt (retries included) is timed and every failure counted,
without touching the code that makes the calls. Operations are URL paths reduced to a fixed vocabulary:
ids, project names and Vault paths never become label values.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import httpx2
import openai
import requests
from requests.adapters import BaseAdapter

from bot.observability.metrics import observe_call

_OPENAI_WORDS = frozenset(
    {
        "organization", "projects", "api_keys", "service_accounts", "users", "invites", "usage",
        "completions", "embeddings", "costs", "audit_logs", "models", "admin_api_keys", "rate_limits",
    }
)  # fmt: skip
_VAULT_KV = frozenset({"data", "metadata", "delete", "undelete", "destroy", "config", "subkeys"})
_VAULT_AUTH_ACTIONS = frozenset({"login", "lookup-self", "renew-self", "revoke-self", "lookup"})


def openai_operation(method: str, path: str) -> str:
    """``DELETE organization/projects/{id}/api_keys/{id}`` from the request's method and path."""
    parts = [p for p in path.split("/") if p and p != "v1"]
    return f"{method} " + "/".join(p if p in _OPENAI_WORDS else "{id}" for p in parts[:6])


def vault_operation(method: str, path: str) -> str:
    """``GET kv/data``, ``GET sys/health``, ``POST auth/approle/login``: a KV mount's name and the secret
    paths under it are left out."""
    parts = [p for p in path.split("/") if p][1:]  # without "v1"
    if not parts:
        return f"{method} other"
    if parts[0] == "sys":
        return f"{method} sys/{parts[1] if len(parts) > 1 else ''}".rstrip("/")
    if parts[0] == "auth" and len(parts) > 2:
        action = parts[-1] if parts[-1] in _VAULT_AUTH_ACTIONS else "other"
        return f"{method} auth/{'token' if parts[1] == 'token' else 'method'}/{action}"
    if len(parts) > 1 and parts[1] in _VAULT_KV:
        return f"{method} kv/{parts[1]}"
    return f"{method} other"


def _transport_code(error: Exception) -> str:
    name = type(error).__name__.lower()
    return "timeout" if "timeout" in name else "connection_error"


class _HasStatus(Protocol):
    status_code: int


_Response = TypeVar("_Response", bound=_HasStatus)


def _timed(system: str, operation: str, send: Callable[[], _Response]) -> _Response:
    """Send, and record the call's latency with its outcome: a transport error or an HTTP error status."""
    started = time.perf_counter()
    try:
        response = send()
    except Exception as error:
        observe_call(system, operation, time.perf_counter() - started, _transport_code(error))
        raise
    code = f"http_{response.status_code}" if response.status_code >= 400 else None
    observe_call(system, operation, time.perf_counter() - started, code)
    return response


class TimedOpenAIClient(openai.DefaultHttpxClient):
    """The SDK's default client (its timeouts, limits, redirects), with each sent request timed."""

    def send(self, request: httpx2.Request, **kwargs: Any) -> httpx2.Response:
        operation = openai_operation(request.method, request.url.path)
        return _timed("openai", operation, lambda: super(TimedOpenAIClient, self).send(request, **kwargs))


class TimedAdapter(BaseAdapter):
    """Wraps a requests adapter (hvac's session) and times each request it sends to Vault."""

    def __init__(self, inner: BaseAdapter) -> None:
        super().__init__()
        self.inner = inner

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        operation = vault_operation(request.method or "GET", urlsplit(request.url or "").path)
        return _timed("vault", operation, lambda: self.inner.send(request, *args, **kwargs))

    def close(self) -> None:
        self.inner.close()


def time_session(session: requests.Session) -> None:
    """Time every request the session sends (once: a session already timed is left alone)."""
    adapters: Mapping[str, BaseAdapter] = session.adapters
    for prefix, adapter in list(adapters.items()):
        if not isinstance(adapter, TimedAdapter):
            session.mount(prefix, TimedAdapter(adapter))
