"""OpenAI Admin API JSON shapes for the sandbox: errors, cursor pages, usage/cost buckets, audit filters.

Pure functions over plain data, kept apart from :mod:`bot.sandbox.openai_server` (state and HTTP) so each
stays short. Shapes follow the published API schemas, which is what the ``openai`` SDK parses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["PRICES", "WIDTHS", "Json", "Query", "Traffic", "audit_matches", "buckets", "error", "one", "page"]

Json = dict[str, Any]
Query = dict[str, list[str]]
WIDTHS = {"1m": 60, "1h": 3600, "1d": 86400}
DEFAULT_LIMITS = {"1m": 60, "1h": 24, "1d": 7}
MAX_LIMITS = {"1m": 1440, "1h": 168, "1d": 31}
#: USD per input / output token; unknown models cost like gpt-4o-mini.
PRICES: dict[str, tuple[float, float]] = {"gpt-4o-mini": (0.15e-6, 0.60e-6), "gpt-4o": (2.5e-6, 10e-6)}


@dataclass(frozen=True)
class Traffic:
    """Requests and tokens one key made in one minute (synthetic: drills script them)."""

    key_id: str
    project: str
    minute: int
    requests: int
    input_tokens: int
    output_tokens: int
    model: str


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
    """The admin list shape: cursor ``after``, ``limit`` up to 100, ``first_id``/``last_id``/``has_more``."""
    limit = max(1, min(int(one(query, "limit", str(default_limit)) or default_limit), 100))
    ids = [item["id"] for item in items]
    after = one(query, "after")
    start = (ids.index(after) + 1 if after in ids else len(ids)) if after else 0
    chunk = items[start : start + limit]
    return {
        "object": "list",
        "data": chunk,
        "first_id": chunk[0]["id"] if chunk else None,
        "last_id": chunk[-1]["id"] if chunk else None,
        "has_more": start + len(chunk) < len(items),
    }


def buckets(traffic: list[Traffic], query: Query, *, now: int, costs: bool) -> tuple[int, Json]:
    """A usage or costs page: one bucket per time slot (empty ones included), results grouped."""
    width = one(query, "bucket_width", "1d") or "1d"
    if width not in WIDTHS or (costs and width != "1d"):
        return error(400, f"Invalid bucket_width: {width}", param="bucket_width")
    default, cap = (7, 180) if costs else (DEFAULT_LIMITS[width], MAX_LIMITS[width])
    limit = min(int(one(query, "limit", str(default)) or default), cap)
    start_time = int(one(query, "start_time", "0") or 0)
    end_time = int(one(query, "end_time", str(now)) or now)
    cursor = one(query, "page")
    step = WIDTHS[width]
    first = int(cursor.removeprefix("page_")) if cursor else start_time // step * step
    starts = list(range(first, end_time, step))[:limit]
    nxt = starts[-1] + step if starts and starts[-1] + step < end_time else None
    wanted = {f: set(query[f]) for f in ("api_key_ids", "project_ids", "models") if query.get(f)}
    chosen = [t for t in traffic if start_time <= t.minute < end_time and _selected(t, wanted)]
    group_by = tuple(query.get("group_by", []))
    fold = _fold_costs if costs else _fold_usage
    data = [
        {
            "object": "bucket",
            "start_time": s,
            "end_time": s + step,
            "results": fold([t for t in chosen if s <= t.minute < s + step], group_by),
        }
        for s in starts
    ]
    nxt_page = f"page_{nxt}" if nxt is not None else None
    return 200, {"object": "page", "data": data, "has_more": nxt is not None, "next_page": nxt_page}


def _selected(t: Traffic, wanted: dict[str, set[str]]) -> bool:
    values = {"api_key_ids": t.key_id, "project_ids": t.project, "models": t.model}
    return all(values[f] in allowed for f, allowed in wanted.items())


def _groups(records: list[Traffic], group_by: tuple[str, ...]) -> dict[tuple[Any, ...], list[Traffic]]:
    fields = {"api_key_id": "key_id", "project_id": "project", "model": "model"}
    groups: dict[tuple[Any, ...], list[Traffic]] = {}
    for rec in records:
        groups.setdefault(tuple(getattr(rec, fields[g], None) for g in group_by if g in fields), []).append(
            rec
        )
    return groups


def _fold_usage(records: list[Traffic], group_by: tuple[str, ...]) -> list[Json]:
    dims = [g for g in group_by if g in ("api_key_id", "project_id", "model")]
    out = []
    for key, recs in _groups(records, group_by).items():
        grouped = dict(zip(dims, key, strict=True))
        inputs = sum(r.input_tokens for r in recs)
        out.append(
            {
                "object": "organization.usage.completions.result",
                "input_tokens": inputs,
                "input_cached_tokens": 0,
                "input_uncached_tokens": inputs,
                "output_tokens": sum(r.output_tokens for r in recs),
                "input_audio_tokens": 0,
                "output_audio_tokens": 0,
                "num_model_requests": sum(r.requests for r in recs),
                "project_id": grouped.get("project_id"),
                "user_id": None,
                "api_key_id": grouped.get("api_key_id"),
                "model": grouped.get("model"),
                "batch": None,
                "service_tier": None,
            }
        )
    return out


def _fold_costs(records: list[Traffic], group_by: tuple[str, ...]) -> list[Json]:
    dims = [g for g in group_by if g in ("api_key_id", "project_id", "model")]
    out = []
    for key, recs in _groups(records, group_by).items():
        grouped = dict(zip(dims, key, strict=True))
        total = 0.0
        for r in recs:
            price_in, price_out = PRICES.get(r.model, PRICES["gpt-4o-mini"])
            total += r.input_tokens * price_in + r.output_tokens * price_out
        out.append(
            {
                "object": "organization.costs.result",
                "amount": {"value": round(total, 10), "currency": "usd"},
                "line_item": None,
                "project_id": grouped.get("project_id"),
                "api_key_id": grouped.get("api_key_id"),
            }
        )
    return out


def audit_matches(event: Json, query: Query) -> bool:
    if (types := query.get("event_types")) and event["type"] not in types:
        return False
    if (projects := query.get("project_ids")) and event.get("project", {}).get("id") not in projects:
        return False
    if (resources := query.get("resource_ids")) and event[event["type"]].get("id") not in resources:
        return False
    at = event["effective_at"]
    checks: dict[str, Callable[[int], bool]] = {
        "gt": at.__gt__,
        "gte": at.__ge__,
        "lt": at.__lt__,
        "lte": at.__le__,
    }
    return all(test(int(b)) for op, test in checks.items() for b in query.get(f"effective_at[{op}]", []))
