"""The usage domain's clock jobs: poll OpenAI's per-minute usage, and roll old minutes into hours."""

from __future__ import annotations

from datetime import timedelta

from bot.db.base import utcnow
from bot.scheduling.jobs import ClockContext, job
from bot.usage.settings import usage_settings

POLL_EVERY_SECONDS = 60.0
RETENTION_EVERY_SECONDS = 3600.0


@job("usage_openai_poll", every=POLL_EVERY_SECONDS)
def usage_openai_poll(clock: ClockContext) -> str:
    """Every key's last minutes of OpenAI usage; only with an admin key (never in sandbox mode)."""
    runtime = clock.runtime
    admin_key = runtime.settings.openai_admin_key
    if admin_key is None or runtime.local_sandbox:
        return "openai usage: no OPENAI_ADMIN_KEY, not polled"
    from bot.usage.openai_poll import admin_client, poll

    settings = usage_settings()
    client = admin_client(admin_key.get_secret_value(), runtime.settings.openai_admin_base_url)
    try:
        result = poll(
            runtime.database,
            client,
            now=utcnow(),
            backfill=timedelta(hours=settings.backfill_hours),
            page_limit=settings.poll_page_limit,
        )
    finally:
        client.close()
    return result.summary()


@job("usage_retention", every=RETENTION_EVERY_SECONDS)
def usage_retention(clock: ClockContext) -> str:
    """Per-minute usage past retention becomes hourly."""
    from bot.usage.retention import roll_up

    moved = roll_up(clock.runtime.database, utcnow(), usage_settings().retention_days)
    return f"usage retention: {moved} minute rows rolled up"
