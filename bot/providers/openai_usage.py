"""Read-only OpenAI Admin API calls: usage, costs and audit-log events for one API key.

Split out of :mod:`bot.providers.openai_admin` to keep each file short. These helpers make raw SDK calls
and let SDK exceptions through: the provider wraps every call in its single error mapping
(``sdk_errors``), so classification lives in one place.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import openai
from openai.types.admin.organization.audit_log_list_response import Actor, AuditLogListResponse
from openai.types.admin.organization.usage_completions_response import (
    DataResultOrganizationUsageCompletionsResult as CompletionsResult,
)
from openai.types.admin.organization.usage_costs_response import (
    DataResultOrganizationCostsResult as CostsResult,
)

from bot.providers.base import AuditEvent, UsageBucket
from bot.secrets import redact_obj

__all__ = [
    "CostBucket",
    "audit_events",
    "bucket_plan",
    "costs",
    "latest_scopes",
    "to_datetime",
    "to_unix",
    "usage",
]

BucketWidth = Literal["1m", "1h"]
# Per-minute buckets are what detection wants, but a page holds at most 1440 of them; past one day the
# hour granularity keeps a long exposure window to a handful of pages.
MINUTE_WINDOW = timedelta(days=1)
_MAX_BUCKETS: dict[BucketWidth, int] = {"1m": 1440, "1h": 168}  # the API's per-page caps
_MAX_COST_BUCKETS = 180
_MAX_PAGES = 1000  # a server that keeps answering has_more must not spin us forever


@dataclass(frozen=True)
class CostBucket:
    """One day of cost for a key; the costs API only has day buckets, so it is kept apart from usage."""

    start: datetime
    end: datetime
    cost_usd: float


def to_unix(moment: datetime, *, round_up: bool = False) -> int:
    """Unix seconds; naive datetimes are taken as UTC (everything in keybot is UTC)."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    stamp = aware.timestamp()
    return math.ceil(stamp) if round_up else math.floor(stamp)


def to_datetime(stamp: int | None) -> datetime | None:
    return datetime.fromtimestamp(stamp, UTC) if stamp is not None else None


def bucket_plan(start: datetime, end: datetime) -> tuple[BucketWidth, int]:
    """Bucket width and page size for a window: minutes up to a day, hours beyond."""
    width: BucketWidth = "1m" if end - start <= MINUTE_WINDOW else "1h"
    return width, _MAX_BUCKETS[width]


def usage(client: openai.OpenAI, key_id: str, start: datetime, end: datetime) -> list[UsageBucket]:
    """Completions usage of one key, one bucket per time slot (empty slots included, as zeros)."""
    width, limit = bucket_plan(start, end)
    usage_api = client.admin.organization.usage
    buckets: list[UsageBucket] = []
    page: str | None = None
    for _ in range(_MAX_PAGES):
        resp = usage_api.completions(
            start_time=to_unix(start),
            end_time=to_unix(end, round_up=True),
            bucket_width=width,
            group_by=["api_key_id"],
            api_key_ids=[key_id],
            limit=limit,
            page=page if page is not None else openai.omit,
        )
        for bucket in resp.data:
            mine = [
                r
                for r in bucket.results
                if isinstance(r, CompletionsResult) and r.api_key_id in (key_id, None)
            ]
            buckets.append(
                UsageBucket(
                    start=datetime.fromtimestamp(bucket.start_time, UTC),
                    end=datetime.fromtimestamp(bucket.end_time, UTC),
                    requests=sum(r.num_model_requests for r in mine),
                    input_tokens=sum(r.input_tokens for r in mine),
                    output_tokens=sum(r.output_tokens for r in mine),
                )
            )
        if not resp.has_more or not resp.next_page or resp.next_page == page:
            break
        page = resp.next_page
    return buckets


def costs(client: openai.OpenAI, key_id: str, start: datetime, end: datetime) -> list[CostBucket]:
    """Daily USD cost of one key (``/organization/costs`` grouped by ``api_key_id``)."""
    usage_api = client.admin.organization.usage
    out: list[CostBucket] = []
    page: str | None = None
    for _ in range(_MAX_PAGES):
        resp = usage_api.costs(
            start_time=to_unix(start),
            end_time=to_unix(end, round_up=True),
            bucket_width="1d",
            group_by=["api_key_id"],
            api_key_ids=[key_id],
            limit=_MAX_COST_BUCKETS,
            page=page if page is not None else openai.omit,
        )
        for bucket in resp.data:
            total = sum(
                r.amount.value
                for r in bucket.results
                if isinstance(r, CostsResult)
                and r.api_key_id in (key_id, None)
                and r.amount is not None
                and r.amount.value is not None
                and (r.amount.currency or "usd").lower() == "usd"
            )
            out.append(
                CostBucket(
                    datetime.fromtimestamp(bucket.start_time, UTC),
                    datetime.fromtimestamp(bucket.end_time, UTC),
                    float(total),
                )
            )
        if not resp.has_more or not resp.next_page or resp.next_page == page:
            break
        page = resp.next_page
    return out


def _events(client: openai.OpenAI, key_id: str, **filters: Any) -> Iterator[AuditLogListResponse]:
    """All audit-log entries about one key, newest first; the SDK page iterator follows ``after``."""
    return iter(client.admin.organization.audit_logs.list(resource_ids=[key_id], limit=100, **filters))


def audit_events(client: openai.OpenAI, key_id: str, start: datetime, end: datetime) -> list[AuditEvent]:
    """Audit-log events for one key whose ``effective_at`` lies in ``[start, end)``, oldest first."""
    window = {"gte": to_unix(start), "lt": to_unix(end, round_up=True)}
    events = [_to_event(e) for e in _events(client, key_id, effective_at=window)]
    return sorted(events, key=lambda e: (e.effective_at, e.id))


def latest_scopes(client: openai.OpenAI, key_id: str) -> list[str] | None:
    """The key's scopes as last recorded in the audit log (created or updated); None when unknown."""
    for event in _events(client, key_id, event_types=["api_key.created", "api_key.updated"]):
        if event.api_key_updated and event.api_key_updated.changes_requested:
            scopes = event.api_key_updated.changes_requested.scopes
        elif event.api_key_created and event.api_key_created.data:
            scopes = event.api_key_created.data.scopes
        else:
            continue
        if scopes is not None:
            return list(scopes)
    return None


def _to_event(event: AuditLogListResponse) -> AuditEvent:
    dumped = event.model_dump(mode="json", by_alias=True, exclude_none=True)
    details: dict[str, Any] = {}
    if project := dumped.get("project"):
        details["project"] = project
    specific = dumped.get(event.type)
    if isinstance(specific, dict):
        details.update(specific)
    return AuditEvent(
        id=event.id,
        type=event.type,
        effective_at=datetime.fromtimestamp(event.effective_at, UTC),
        actor=_actor(event.actor),
        details=redact_obj(details),
    )


def _actor(actor: Actor | None) -> str | None:
    """A short who-did-it: an email when the log has one, else the user / service account / key id."""
    if actor is None:
        return None
    if actor.api_key is not None:
        key = actor.api_key
        if key.user is not None and (key.user.email or key.user.id):
            return key.user.email or key.user.id
        if key.service_account is not None and key.service_account.id:
            return key.service_account.id
        return key.id
    if actor.session is not None and actor.session.user is not None:
        return actor.session.user.email or actor.session.user.id
    return None
