"""Slack's clock job: forget handled event ids once Slack can no longer retry them."""

from __future__ import annotations

from bot.scheduling.jobs import ClockContext, job
from bot.slack.dedupe import forget_old


@job("forget_slack_events", every=3600, misfire_grace_seconds=3600)
def forget_slack_events(clock: ClockContext) -> int:
    return forget_old(clock.runtime.database)
