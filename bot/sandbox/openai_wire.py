"""OpenAI Admin API JSON shapes for the sandbox: requests as handlers see them, errors, cursor pages,
audit filters.

Pure functions over plain data, kept apart from :mod:`bot.sandbox.openai_server` (state and HTTP) so each
stays short. Shapes follow the published API schemas, which is what the ``openai`` SDK parses; the tests
check every answer against the pinned official spec.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["ApiCall", "Json", "Query", "audit_matches", "error", "fold_query", "one", "page"]

Json = dict[str, Any]
Query = dict[str, list[str]]


@dataclass(frozen=True)
class ApiCall:
    """One parsed request. ``path`` is relative to ``/v1``; ``query`` folds ``name[]`` into ``name``."""

    method: str
    path: str
    query: Query
    pairs: list[tuple[str, str]]  # the wire form, in order (usage filters read it)
    body: Any
    token: str

    @property
    def json(self) -> Json:
        """The JSON body when it is an object, else empty (handlers then report the missing field)."""
        return self.body if isinstance(self.body, dict) else {}


def fold_query(pairs: list[tuple[str, str]]) -> Query:
    """Wire query as ``{name: [values]}``: ``name[]`` folded into ``name``, ``a[b]`` kept as is."""
    out: Query = {}
    for key, value in pairs:
        out.setdefault(key.removesuffix("[]"), []).append(value)
    return out


def error(
    status: int,
    message: str,
    code: str | None = None,
    param: str | None = None,
    type_: str = "invalid_request_error",
) -> tuple[int, Json]:
    """OpenAI's error envelope: ``{"error": {"message", "type", "param", "code"}}``."""
    return status, {"error": {"message": message, "type": type_, "param": param, "code": code}}


def one(query: Query, name: str, default: str | None = None) -> str | None:
    """The last value of a query parameter (repeats and ``name[]`` arrays collapse to one)."""
    values = query.get(name)
    return values[-1] if values else default


def page(items: list[Json], query: Query, default_limit: int = 20) -> Json:
    """The admin list shape: cursors ``after``/``before``, ``limit`` up to 100, ``first_id``/``last_id``."""
    limit = max(1, min(int(one(query, "limit", str(default_limit)) or default_limit), 100))
    ids = [item["id"] for item in items]
    start = 0
    if after := one(query, "after"):
        start = ids.index(after) + 1 if after in ids else len(ids)
    end_cap = len(items)
    if before := one(query, "before"):
        end_cap = ids.index(before) if before in ids else 0
        start = max(start, end_cap - limit)
    chunk = items[start : min(start + limit, end_cap)]
    return {
        "object": "list",
        "data": chunk,
        "first_id": chunk[0]["id"] if chunk else None,
        "last_id": chunk[-1]["id"] if chunk else None,
        "has_more": start + len(chunk) < end_cap,
    }


def audit_matches(event: Json, query: Query) -> bool:
    """The audit log filters: event types, projects, resources, actors, and ``effective_at`` bounds."""
    if (types := query.get("event_types")) and event["type"] not in types:
        return False
    if (projects := query.get("project_ids")) and (event.get("project") or {}).get("id") not in projects:
        return False
    if (resources := query.get("resource_ids")) and (event.get(event["type"]) or {}).get(
        "id"
    ) not in resources:
        return False
    actor = event.get("actor") or {}
    if (actor_ids := query.get("actor_ids")) and not set(_actor_ids(actor)) & set(actor_ids):
        return False
    if emails := query.get("actor_emails"):
        who = (actor.get("api_key") or {}).get("user") or (actor.get("session") or {}).get("user") or {}
        if who.get("email") not in emails:
            return False
    at = event["effective_at"]
    checks: dict[str, Callable[[int], bool]] = {
        "gt": at.__gt__,
        "gte": at.__ge__,
        "lt": at.__lt__,
        "lte": at.__le__,
    }
    return all(test(int(b)) for op, test in checks.items() for b in query.get(f"effective_at[{op}]", []))


def _actor_ids(actor: Json) -> list[str]:
    api_key = actor.get("api_key") or {}
    session = actor.get("session") or {}
    ids = [
        api_key.get("id"),
        (api_key.get("user") or {}).get("id"),
        (api_key.get("service_account") or {}).get("id"),
        (session.get("user") or {}).get("id"),
    ]
    return [i for i in ids if i]
