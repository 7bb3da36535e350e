"""The OpenAI usage poller against the spec-validated stand-in: pages, unknown ids, re-reads, restarts,
gaps longer than the backfill bound, and the clock job's switch."""

from __future__ import annotations

from datetime import timedelta

import openai
import pytest

from bot.config import get_settings
from bot.db.session import Database
from bot.runtime import Runtime
from bot.scheduling.jobs import ClockContext
from bot.usage.jobs import usage_openai_poll
from bot.usage.openai_poll import OVERLAP, poll
from bot.usage.prices import estimate_cost
from bot.usage.service import series
from tests.standins.openai_api import OpenAIStandin
from tests.usage_helpers import NOW, add_key

M = timedelta(minutes=1)
T = int(NOW.timestamp())


def _requests(database: Database, key_id: int, start_offset: int, minutes: int) -> list[float]:
    with database.session() as session:
        block = series(session, [key_id], NOW + start_offset * M, NOW + (start_offset + minutes) * M)
    return block.values["requests"][0].tolist()


def test_pages_map_keys_estimate_cost_and_skip_unknown_ids(
    database: Database, openai_standin: OpenAIStandin, openai_admin_client: openai.OpenAI
) -> None:
    a = add_key(database, "checkout", provider_key_id="key_checkout0001")
    b = add_key(database, "batch", provider_key_id="key_batch0002")
    openai_standin.add_usage("key_checkout0001", T - 90 * 60, 1000, 200, 4, model="gpt-4o")
    openai_standin.add_usage("key_checkout0001", T - 90 * 60 + 30, 500, 0, 1, model="gpt-4o-mini")
    openai_standin.add_usage("key_batch0002", T - 10 * 60, 10, 10, 2)
    openai_standin.add_usage("key_stranger999", T - 5 * 60, 10, 10, 9)
    openai_standin.add_usage("key_checkout0001", T + 20, 10, 10, 50)  # the minute still running: not read

    result = poll(
        database,
        openai_admin_client,
        now=NOW + timedelta(seconds=40),
        backfill=timedelta(hours=2),
        page_limit=30,
    )

    calls = openai_standin.calls_to(r"/organization/usage/completions$")
    assert len(calls) == result.pages == 4  # 120 one-minute buckets, 30 a page
    assert all("api_key_ids" not in c.query for c in calls)
    assert calls[0].query["group_by"] == ["api_key_id", "model"] and calls[0].query["bucket_width"] == ["1m"]
    assert result.unknown_key_ids == 1 and result.buckets == 120
    assert _requests(database, a, -90, 1) == [5.0]
    assert _requests(database, b, -10, 1) == [2.0]
    assert _requests(database, a, 0, 1) == [0.0]
    with database.session() as session:
        block = series(session, [a], NOW - 90 * M, NOW - 89 * M)
    assert block.values["cost_usd"][0, 0] == pytest.approx(
        estimate_cost("gpt-4o", 1000, 200) + estimate_cost("gpt-4o-mini", 500, 0)
    )
    assert block.values["tokens"][0, 0] == 1700


def test_a_restarted_poller_resumes_from_the_cursor_and_re_reads_without_doubling(
    database: Database, openai_standin: OpenAIStandin, openai_admin_client: openai.OpenAI
) -> None:
    a = add_key(database, "checkout", provider_key_id="key_checkout0001")
    openai_standin.add_usage("key_checkout0001", T - 3 * 60, 10, 10, 3)
    first = poll(database, openai_admin_client, now=NOW, backfill=timedelta(hours=1))
    assert first.end == NOW
    openai_standin.add_usage("key_checkout0001", T - 2 * 60, 10, 10, 4)  # arrived late, inside the overlap
    openai_standin.add_usage("key_checkout0001", T + 60, 10, 10, 5)
    # a new poller (nothing in memory): the window starts at the stored cursor minus the overlap
    second = poll(database, openai_admin_client, now=NOW + 3 * M, backfill=timedelta(hours=1))
    assert second.start == NOW - OVERLAP and second.end == NOW + 3 * M
    assert _requests(database, a, -3, 5) == [3.0, 4.0, 0.0, 0.0, 5.0]
    poll(database, openai_admin_client, now=NOW + 3 * M, backfill=timedelta(hours=1))  # the same window again
    assert _requests(database, a, -3, 5) == [3.0, 4.0, 0.0, 0.0, 5.0]


def test_downtime_longer_than_the_backfill_bound_is_bounded_and_said(
    database: Database, openai_standin: OpenAIStandin, openai_admin_client: openai.OpenAI
) -> None:
    a = add_key(database, "checkout", provider_key_id="key_checkout0001")
    poll(database, openai_admin_client, now=NOW, backfill=timedelta(minutes=10))
    openai_standin.add_usage("key_checkout0001", T + 2 * 3600, 1, 1, 7)  # during the outage, too old
    openai_standin.add_usage("key_checkout0001", T + 29 * 3600, 1, 1, 8)
    later = NOW + timedelta(hours=30)
    result = poll(database, openai_admin_client, now=later, backfill=timedelta(hours=6), page_limit=1440)
    assert result.start == later - timedelta(hours=6) and result.skipped_before == result.start
    assert "not backfilled" in result.summary()
    assert _requests(database, a, 2 * 60, 1) == [0.0]
    assert _requests(database, a, 29 * 60, 1) == [8.0]


def test_the_job_polls_only_with_an_admin_key(
    database: Database, openai_standin: OpenAIStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_key(database, "checkout", provider_key_id="key_checkout0001")
    runtime = Runtime(get_settings())
    runtime.__dict__["database"] = database
    assert "not polled" in str(usage_openai_poll(ClockContext(runtime, None)))
    assert openai_standin.calls_to(r"/organization/usage") == []

    monkeypatch.setenv("OPENAI_ADMIN_KEY", openai_standin.admin_key)
    monkeypatch.setenv("OPENAI_ADMIN_BASE_URL", openai_standin.base_url)
    monkeypatch.setenv("KEYBOT_USAGE_BACKFILL_HOURS", "1")
    get_settings.cache_clear()
    runtime = Runtime(get_settings())
    runtime.__dict__["database"] = database
    openai_standin.add_usage("key_checkout0001", int(__import__("time").time()) - 120, 1, 1, 6)
    assert "1 key-minutes" in str(usage_openai_poll(ClockContext(runtime, None)))
