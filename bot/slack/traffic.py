"""What App Home and ``/key-owner`` show of anomaly detection: each key's recent traffic (a sparkline of
requests per minute, with the window's totals) and its open alerts.

Read from the usage store (bot/usage) and the alerts domain (bot/alerts). Both are optional extras on
those surfaces: any failure is logged and the section is left out, never taking the Home tab down.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from bot.alerts.service import open_alerts
from bot.db.session import Database
from bot.log import get_logger
from bot.slack.blocks.alert_page import AlertPage, page_from_alert
from bot.slack.blocks.sparkline import KeyTraffic
from bot.usage.service import series

log = get_logger(__name__)

HOURS = 6
MAX_KEYS = 50
MAX_ALERTS = 20


def key_traffic(
    database: Database, key_ids: Iterable[int], now: datetime, hours: int = HOURS
) -> dict[int, KeyTraffic]:
    """The last ``hours`` of each key that had traffic in them (keys without any are left out)."""
    wanted = list(dict.fromkeys(key_ids))[:MAX_KEYS]
    if not wanted:
        return {}
    end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    try:
        with database.session() as session:
            block = series(session, wanted, end - timedelta(hours=hours), end)
    except Exception:
        log.exception("usage series unavailable for App Home or the key card")
        return {}
    found = {}
    for row, key_id in enumerate(block.key_ids):
        totals = {metric: float(values[row].sum()) for metric, values in block.values.items()}
        if not any(totals.values()):
            continue
        requests = block.values.get("requests")
        per_minute = tuple(float(v) for v in requests[row]) if requests is not None else ()
        found[key_id] = KeyTraffic(key_id, hours, per_minute, totals)
    return found


def open_alert_pages(database: Database, key_ids: Iterable[int]) -> list[AlertPage]:
    """The keys' open and acknowledged alerts, newest first; empty when the alerts are unreadable."""
    wanted = list(dict.fromkeys(key_ids))
    if not wanted:
        return []
    try:
        with database.session() as session:
            views = open_alerts(session, wanted)
    except Exception:
        log.exception("open alerts unavailable for App Home or the key card")
        return []
    return [page_from_alert(v) for v in views[:MAX_ALERTS]]
