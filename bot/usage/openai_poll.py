"""The OpenAI usage poller: every key's per-minute completions usage, through the SDK's admin client.

One call pattern: `usage.completions(bucket_width="1m", group_by=["api_key_id", "model"])` for the whole
organization (no key filter), following `next_page`. Buckets are mapped to registry keys by
`Key.provider_key_id` (ids keybot does not know are counted and skipped) and written with
`record_buckets`, which replaces rows: the window starts `OVERLAP` before the cursor, because the API
may still be filling its last minutes, and re-reading them never double-counts. After downtime the
window reaches back at most `KEYBOT_USAGE_BACKFILL_HOURS`; older minutes are lost, and said so. Only
ended minutes are read. The cursor (`usage_cursors`) moves once the window is written, so a poller
killed midway re-reads it on restart. Cost per minute is estimated from tokens (`bot.usage.prices`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import openai
from openai.types.admin.organization.usage_completions_response import (
    DataResultOrganizationUsageCompletionsResult as CompletionsResult,
)
from sqlalchemy import select

from bot.db.base import utcnow
from bot.db.session import Database
from bot.log import get_logger
from bot.registry.models import Key
from bot.usage.models import UsageCursor
from bot.usage.prices import estimate_cost
from bot.usage.service import record_buckets
from bot.usage.types import UsageLine, floor_minute

log = get_logger(__name__)

SOURCE = "openai"
OVERLAP = timedelta(minutes=5)
MAX_PAGES = 10_000
"""A server that keeps answering has_more must not spin the clock forever (a day is 1440 buckets)."""
_NO_INFERENCE_KEY = "keybot-admin-client-has-no-inference-key"


@dataclass(frozen=True)
class PollResult:
    start: datetime
    end: datetime
    pages: int
    buckets: int
    rows: int
    unknown_key_ids: int
    skipped_before: datetime | None  # set when downtime was longer than the backfill bound

    def summary(self) -> str:
        text = (
            f"openai usage {self.start:%Y-%m-%d %H:%M}..{self.end:%H:%M}: {self.pages} pages, "
            f"{self.rows} key-minutes, {self.unknown_key_ids} unknown key ids"
        )
        return text + (
            f"; minutes before {self.skipped_before:%Y-%m-%d %H:%M} not backfilled"
            if self.skipped_before
            else ""
        )


def admin_client(admin_key: str, base_url: str | None, *, timeout: float = 30.0) -> openai.OpenAI:
    """An SDK client like the provider's (`bot.providers.openai_admin`): no ambient org/project headers,
    no inference key, bounded SDK retries (the next tick retries anyway)."""
    client = openai.OpenAI(
        api_key=_NO_INFERENCE_KEY, admin_api_key=admin_key, base_url=base_url, timeout=timeout, max_retries=2
    )
    client.organization = None
    client.project = None
    return client


def _cursor(database: Database) -> datetime | None:
    with database.session() as session:
        row = session.get(UsageCursor, SOURCE)
        return row.position if row is not None else None


def _save_cursor(database: Database, position: datetime, unknown: Counter[str]) -> None:
    with database.session() as session:
        row = session.get(UsageCursor, SOURCE, with_for_update=True)
        if row is None:
            session.add(UsageCursor(source=SOURCE, position=position, data={"unknown_key_ids": len(unknown)}))
        elif row.position is None or position > row.position:
            row.position = position
            row.data = {"unknown_key_ids": len(unknown)}


def _key_ids(database: Database, provider_ids: set[str]) -> dict[str, int]:
    if not provider_ids:
        return {}
    with database.session() as session:
        rows = session.execute(
            select(Key.provider_key_id, Key.id).where(
                Key.provider_key_id.in_(sorted(provider_ids)), Key.provider == "openai", Key.drill.is_(False)
            )
        ).all()
    found: dict[str, int] = {}
    for provider_id, key_id in rows:
        found.setdefault(str(provider_id), key_id)  # two registry rows for one id: the older one
    return found


def poll(
    database: Database,
    client: openai.OpenAI,
    *,
    now: datetime | None = None,
    backfill: timedelta = timedelta(hours=24),
    page_limit: int = 1440,
) -> PollResult:
    """Read every ended minute since the cursor (minus OVERLAP, bounded by `backfill`) and record it."""
    end = floor_minute(now or utcnow())
    earliest = end - backfill
    cursor = _cursor(database)
    wanted = earliest if cursor is None else cursor - OVERLAP
    start = max(wanted, earliest)
    skipped = start if cursor is not None and cursor - OVERLAP < earliest else None
    if skipped is not None:
        log.warning(
            "openai usage gap longer than the backfill bound", since=cursor.isoformat() if cursor else None
        )
    pages = buckets = rows = 0
    unknown: Counter[str] = Counter()
    page: str | None = None
    while start < end and pages < MAX_PAGES:
        resp = client.admin.organization.usage.completions(
            start_time=int(start.timestamp()),
            end_time=int(end.timestamp()),
            bucket_width="1m",
            group_by=["api_key_id", "model"],
            limit=page_limit,
            page=page if page is not None else openai.omit,
        )
        pages += 1
        results = [
            (bucket.start_time, r)
            for bucket in resp.data
            for r in bucket.results
            if isinstance(r, CompletionsResult) and r.api_key_id
        ]
        buckets += len(resp.data)
        known = _key_ids(database, {str(r.api_key_id) for _t, r in results})
        lines = []
        for stamp, r in results:
            key_id = known.get(str(r.api_key_id))
            if key_id is None:
                unknown[str(r.api_key_id)] += 1
                continue
            lines.append(
                UsageLine(
                    key_id=key_id,
                    minute=datetime.fromtimestamp(stamp, UTC),
                    requests=r.num_model_requests,
                    input_tokens=r.input_tokens,
                    output_tokens=r.output_tokens,
                    cost_usd=estimate_cost(r.model, r.input_tokens, r.output_tokens),
                    model=r.model[:64] if r.model else None,
                )
            )
        rows += record_buckets(database, lines, source=SOURCE).rows
        if not resp.has_more or not resp.next_page or resp.next_page == page:
            break
        page = resp.next_page
    if start < end:
        _save_cursor(database, end, unknown)
    result = PollResult(start, end, pages, buckets, rows, len(unknown), skipped)
    log.info("openai usage polled", pages=pages, rows=rows, unknown_key_ids=len(unknown))
    return result
