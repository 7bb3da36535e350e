"""The postmortems domain's clock jobs: the weekly digest.

`weekly_digest` runs every minute. Once this week's slot (KEYBOT_DIGEST_TIME, e.g. `mon 09:00`, in
KEYBOT_DIGEST_TIMEZONE) has passed, it enqueues the digest of the last complete ISO week to
KEYBOT_DIGEST_CHANNEL, claimed by the outbox's `digest:<yyyy-Www>` dedupe key: however often it runs and on
however many clocks, a week is posted once. Only this week's slot is considered: a clock that was down at
the slot posts late (that week's digest), and a clock down for a whole week skips it rather than posting a
stale backlog. No channel configured: nothing is computed or sent.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.db.base import utcnow
from bot.db.session import Database
from bot.log import get_logger
from bot.postmortems.digest import build_digest, digest_markdown, iso_week
from bot.postmortems.outbox import claim_digest, digest_claimed
from bot.postmortems.settings import PostmortemSettings, parse_digest_time, postmortem_settings
from bot.scheduling.jobs import ClockContext, job

DIGEST_EVERY_SECONDS = 60.0
log = get_logger(__name__)


def this_weeks_slot(now: datetime, digest_time: str, timezone: str) -> datetime:
    """The slot of `now`'s local ISO week, as an aware datetime in `timezone`."""
    weekday, hour, minute = parse_digest_time(digest_time)
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone).date()
    monday = local - timedelta(days=local.weekday())
    return datetime.combine(monday + timedelta(days=weekday), time(hour, minute), tzinfo=zone)


def run_digest(database: Database, now: datetime, settings: PostmortemSettings | None = None) -> str | None:
    """Enqueue the last complete week's digest once its slot has passed; returns the week enqueued."""
    settings = settings or postmortem_settings()
    channel = (settings.digest_channel or "").strip()
    if not channel:
        return None
    slot = this_weeks_slot(now, settings.digest_time, settings.digest_timezone)
    if now < slot:
        return None
    monday = slot.date() - timedelta(days=slot.date().weekday() + 7)
    week = iso_week(monday)
    if digest_claimed(database, week):
        return None
    digest = build_digest(database, monday, settings.digest_timezone, now=now)
    markdown, warnings = digest_markdown(digest)
    for warning in warnings:
        log.warning("weekly digest template", week=week, warning=warning)
    return week if claim_digest(database, digest, channel, markdown) else None


@job("weekly_digest", every=DIGEST_EVERY_SECONDS)
def weekly_digest(clock: ClockContext) -> str | None:
    """The managers' weekly digest, once per ISO week, after its slot."""
    return run_digest(clock.runtime.database, utcnow())
