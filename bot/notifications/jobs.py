"""The outbox's clock job: deliver what runs queued, and settle deliveries interrupted mid-send."""

from __future__ import annotations

from datetime import timedelta

from bot.notifications.service import deliver_pending, recover_interrupted
from bot.scheduling.jobs import ClockContext, job

INTERRUPTED_AFTER = timedelta(minutes=5)


@job("deliver_notifications", every=15)
def deliver_notifications(clock: ClockContext) -> tuple[int, int]:
    """(delivered, failed); nothing without a sender (no Slack configured: messages wait in the outbox)."""
    if clock.sender is None:
        return (0, 0)
    recover_interrupted(clock.runtime.database, clock.sender, older_than=INTERRUPTED_AFTER)
    return deliver_pending(clock.runtime.database, clock.sender)
