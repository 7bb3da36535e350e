"""Usage and cost buckets of the sandbox (``/organization/usage/completions`` and ``/organization/costs``).

Pure functions over synthetic usage records; the shapes follow the spec's ``UsageResponse`` and the costs
result, grouped and paged as the real API does (empty buckets included, ``page_<start>`` cursors).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["PRICES", "BadParameter", "UsageRecord", "completions_page", "costs_page", "parse_query"]

WIDTHS = {"1m": 60, "1h": 3600, "1d": 86400}
DEFAULT_LIMITS = {"1m": 60, "1h": 24, "1d": 7}
MAX_LIMITS = {"1m": 1440, "1h": 168, "1d": 31}
# USD per token; anything unknown costs like gpt-4o-mini
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15e-6, 0.60e-6),
    "gpt-4o": (2.50e-6, 10.0e-6),
    "gpt-4.1": (2.00e-6, 8.00e-6),
}


class BadParameter(ValueError):
    """A query parameter the real API would refuse with a 400 naming it."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class UsageRecord:
    """Requests and tokens one key made in one minute (synthetic: tests and drills script them)."""

    api_key_id: str
    project_id: str | None
    minute_ts: int
    input_tokens: int
    output_tokens: int
    num_model_requests: int
    model: str = "gpt-4o-mini"
    user_id: str | None = None
    batch: bool = False
    input_cached_tokens: int = 0


@dataclass(frozen=True)
class UsageQuery:
    start_time: int
    end_time: int
    bucket_width: str
    limit: int
    page: int | None  # bucket start to resume from
    group_by: tuple[str, ...]
    api_key_ids: frozenset[str] | None
    project_ids: frozenset[str] | None
    models: frozenset[str] | None
    user_ids: frozenset[str] | None


def parse_query(query: list[tuple[str, str]], *, now: int, costs: bool) -> UsageQuery:
    """``query`` in the SDK's wire form (``group_by[]=...``) or the spec's (``group_by=...``)."""

    def many(name: str) -> list[str]:
        return [v for k, v in query if k in (name, f"{name}[]")]

    def one(name: str) -> str | None:
        values = many(name)
        return values[-1] if values else None

    width = one("bucket_width") or "1d"
    if width not in WIDTHS or (costs and width != "1d"):
        raise BadParameter("bucket_width", f"Invalid bucket_width: {width}")
    default_limit, max_limit = (7, 180) if costs else (DEFAULT_LIMITS[width], MAX_LIMITS[width])
    limit = min(int(one("limit") or default_limit), max_limit)
    page = one("page")

    def opt_set(name: str) -> frozenset[str] | None:
        values = many(name)
        return frozenset(values) if values else None

    return UsageQuery(
        start_time=int(one("start_time") or 0),
        end_time=int(one("end_time") or now),
        bucket_width=width,
        limit=limit,
        page=int(page.removeprefix("page_")) if page else None,
        group_by=tuple(many("group_by")),
        api_key_ids=opt_set("api_key_ids"),
        project_ids=opt_set("project_ids"),
        models=opt_set("models"),
        user_ids=opt_set("user_ids"),
    )


def _selected(rec: UsageRecord, q: UsageQuery) -> bool:
    return (
        (q.api_key_ids is None or rec.api_key_id in q.api_key_ids)
        and (q.project_ids is None or rec.project_id in q.project_ids)
        and (q.models is None or rec.model in q.models)
        and (q.user_ids is None or rec.user_id in q.user_ids)
    )


def _bucket_starts(q: UsageQuery) -> tuple[list[int], int | None]:
    width = WIDTHS[q.bucket_width]
    first = q.page if q.page is not None else (q.start_time // width) * width
    starts: list[int] = []
    t = first
    while t < q.end_time and len(starts) < q.limit:
        starts.append(t)
        t += width
    return starts, (t if t < q.end_time else None)


def _page(q: UsageQuery, records: Iterable[UsageRecord], fold: Any) -> dict[str, Any]:
    width = WIDTHS[q.bucket_width]
    starts, next_start = _bucket_starts(q)
    chosen = [r for r in records if _selected(r, q) and q.start_time <= r.minute_ts < q.end_time]
    data = []
    for start in starts:
        in_bucket = [r for r in chosen if start <= r.minute_ts < start + width]
        data.append(
            {"object": "bucket", "start_time": start, "end_time": start + width, "results": fold(in_bucket)}
        )
    return {
        "object": "page",
        "data": data,
        "has_more": next_start is not None,
        "next_page": f"page_{next_start}" if next_start is not None else None,
    }


def _group_key(rec: UsageRecord, fields: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(getattr(rec, f, None) for f in fields)


def completions_page(q: UsageQuery, records: Iterable[UsageRecord]) -> dict[str, Any]:
    dims = ("project_id", "user_id", "api_key_id", "model", "batch", "service_tier")

    def fold(bucket: list[UsageRecord]) -> list[dict[str, Any]]:
        groups: dict[tuple[Any, ...], list[UsageRecord]] = {}
        for rec in bucket:
            groups.setdefault(_group_key(rec, q.group_by), []).append(rec)
        results = []
        for key, recs in groups.items():
            grouped = dict(zip(q.group_by, key, strict=True))
            if "service_tier" in grouped:
                grouped["service_tier"] = "default"
            inp = sum(r.input_tokens for r in recs)
            cached = sum(r.input_cached_tokens for r in recs)
            results.append(
                {
                    "object": "organization.usage.completions.result",
                    "input_tokens": inp,
                    "input_cached_tokens": cached,
                    "input_uncached_tokens": inp - cached,
                    "output_tokens": sum(r.output_tokens for r in recs),
                    "input_audio_tokens": 0,
                    "output_audio_tokens": 0,
                    "num_model_requests": sum(r.num_model_requests for r in recs),
                    **{d: grouped.get(d) for d in dims},
                }
            )
        return results

    return _page(q, records, fold)


def record_cost(rec: UsageRecord) -> tuple[float, float]:
    price_in, price_out = PRICES.get(rec.model, PRICES["gpt-4o-mini"])
    return rec.input_tokens * price_in, rec.output_tokens * price_out


def costs_page(q: UsageQuery, records: Iterable[UsageRecord]) -> dict[str, Any]:
    by_line_item = "line_item" in q.group_by
    fields = tuple(f for f in q.group_by if f != "line_item")

    def fold(bucket: list[UsageRecord]) -> list[dict[str, Any]]:
        sums: dict[tuple[Any, ...], list[float]] = {}
        for rec in bucket:
            cost_in, cost_out = record_cost(rec)
            key = _group_key(rec, fields)
            if by_line_item:
                parts: tuple[tuple[str, float, float], ...] = (
                    ("input", cost_in, float(rec.input_tokens)),
                    ("output", cost_out, float(rec.output_tokens)),
                )
                for kind, cost, qty in parts:
                    acc = sums.setdefault((*key, f"{rec.model}, {kind}"), [0.0, 0.0])
                    acc[0] += cost
                    acc[1] += qty
            else:
                acc = sums.setdefault(key, [0.0, 0.0])
                acc[0] += cost_in + cost_out
        results = []
        for key, (value, qty) in sums.items():
            grouped = dict(zip(fields, key, strict=False))
            results.append(
                {
                    "object": "organization.costs.result",
                    "amount": {"value": round(value, 10), "currency": "usd"},
                    "line_item": key[-1] if by_line_item else None,
                    "project_id": grouped.get("project_id"),
                    "api_key_id": grouped.get("api_key_id"),
                    "quantity": qty if by_line_item else None,
                    "quantity_unit": "tokens" if by_line_item else None,
                }
            )
        return results

    return _page(q, records, fold)
