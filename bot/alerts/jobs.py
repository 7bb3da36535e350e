"""The alerts domain's clock jobs: detection, escalation (and closing quiet acknowledged alerts), and
PagerDuty, each on its own schedule so a slow or failing PagerDuty never delays a Slack page."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.alerts.detect import run_detection
from bot.alerts.escalation import resolve_quiet, run_escalations
from bot.alerts.pagerduty import PagerDutyClient, sync_pagerduty
from bot.alerts.settings import alert_settings
from bot.db.base import utcnow
from bot.scheduling.jobs import ClockContext, job

if TYPE_CHECKING:
    from bot.config import Settings

ESCALATION_EVERY_SECONDS = 30.0
PAGERDUTY_EVERY_SECONDS = 60.0


def _detect_every(_settings: Settings) -> float:
    return alert_settings().detect_every_seconds


@job("detect_anomalies", every=_detect_every)
def detect_anomalies(clock: ClockContext) -> dict[str, object]:
    """Step the detectors over new usage minutes and open or update alerts."""
    result = run_detection(clock.runtime.database, utcnow(), alert_settings())
    return {
        "keys": result.keys,
        "minutes": result.minutes,
        "opened": result.opened,
        "updated": result.updated,
    }


@job("alert_escalations", every=ESCALATION_EVERY_SECONDS)
def alert_escalations(clock: ClockContext) -> dict[str, object]:
    """Page each due step of each open alert's chain; resolve acknowledged alerts gone quiet."""
    settings, now = alert_settings(), utcnow()
    paged = run_escalations(clock.runtime.database, now, settings)
    return {"paged": paged, "resolved": resolve_quiet(clock.runtime.database, now, settings)}


@job("alert_pagerduty", every=PAGERDUTY_EVERY_SECONDS)
def alert_pagerduty(clock: ClockContext) -> list[str]:
    """Bring PagerDuty up to date with each alert's state, when a routing key is configured."""
    settings = alert_settings()
    if settings.pagerduty_routing_key is None:
        return []
    client = PagerDutyClient(settings.pagerduty_url, settings.pagerduty_routing_key.get_secret_value())
    return sync_pagerduty(clock.runtime.database, client, utcnow())
