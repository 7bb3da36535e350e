"""PagerDuty Events API v2, for teams that page through it: trigger, acknowledge and resolve an alert.

The alert's own state says what PagerDuty should know; `sync_pagerduty` (a clock job of its own) sends
whatever is missing, so a PagerDuty outage never delays the Slack page and a failed send is retried on a
later tick. Within one send, 429 and 5xx answers are retried with exponential backoff. Logs carry the
status and the alert id, never the routing key.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx2
from sqlalchemy import and_, or_, select

from bot.alerts.models import Alert
from bot.alerts.types import AlertState
from bot.db.session import Database
from bot.log import get_logger
from bot.registry.models import Key
from bot.secrets import redact

log = get_logger(__name__)

RETRIES = 3
BATCH = 50


class PagerDutyError(Exception):
    """PagerDuty did not take the event; `permanent` when sending it again cannot help (HTTP 400)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class PagerDutyClient:
    """A small Events API v2 client over httpx; `sleep` is injectable so tests never wait."""

    def __init__(
        self,
        url: str,
        routing_key: str,
        *,
        http: httpx2.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        backoff: float = 0.5,
    ) -> None:
        self._endpoint = url.rstrip("/") + "/v2/enqueue"
        self._routing_key = routing_key
        self._http = http or httpx2.Client(timeout=10.0)
        self._sleep = sleep
        self._backoff = backoff

    def send(self, action: str, dedup_key: str, payload: dict[str, Any] | None = None) -> None:
        body: dict[str, Any] = {
            "routing_key": self._routing_key,
            "event_action": action,
            "dedup_key": dedup_key,
        }
        if payload is not None:
            body["payload"] = payload
        problem = "no answer"
        for attempt in range(RETRIES):
            if attempt:
                self._sleep(self._backoff * 2 ** (attempt - 1))
            try:
                reply = self._http.post(self._endpoint, json=body)
            except httpx2.HTTPError as error:
                problem = type(error).__name__
                continue
            if reply.status_code == 202:
                return
            if reply.status_code == 429 or reply.status_code >= 500:
                problem = f"HTTP {reply.status_code}"
                continue
            answer = redact(reply.text[:300])
            refused = f"PagerDuty refused the {action} event: HTTP {reply.status_code} {answer}"
            raise PagerDutyError(refused, permanent=reply.status_code == 400)
        raise PagerDutyError(f"PagerDuty did not take the {action} event after {RETRIES} tries ({problem})")


def actions_needed(state: AlertState, sent: str | None) -> list[str]:
    """The events that bring PagerDuty from `sent` (the last event it took) to the alert's `state`."""
    if sent == "rejected":
        return []
    if state is AlertState.OPEN:
        return ["trigger"] if sent is None else []
    if state is AlertState.ACKNOWLEDGED:
        return {None: ["trigger", "acknowledge"], "trigger": ["acknowledge"]}.get(sent, [])
    return ["resolve"] if sent in ("trigger", "acknowledge") else []


def _pending() -> Any:
    closed = Alert.state.in_([AlertState.RESOLVED, AlertState.FALSE_POSITIVE])
    return or_(
        and_(Alert.state == AlertState.OPEN, Alert.pagerduty_sent.is_(None)),
        and_(
            Alert.state == AlertState.ACKNOWLEDGED,
            or_(Alert.pagerduty_sent.is_(None), Alert.pagerduty_sent == "trigger"),
        ),
        and_(closed, Alert.pagerduty_sent.in_(["trigger", "acknowledge"])),
    )


def sync_pagerduty(database: Database, client: PagerDutyClient, now: datetime) -> list[str]:
    """Send each alert's missing events; returns `<alert id>:<action>` for each event PagerDuty took."""
    with database.session() as session:
        rows = session.execute(
            select(Alert, Key)
            .join(Key, Key.id == Alert.key_id)
            .where(_pending(), or_(Alert.pagerduty_retry_at.is_(None), Alert.pagerduty_retry_at <= now))
            .order_by(Alert.id)
            .limit(BATCH)
        ).all()
        work = [
            (alert.id, alert.state, alert.pagerduty_sent, alert.pagerduty_key, _payload(alert, key))
            for alert, key in rows
        ]
    done: list[str] = []
    for alert_id, state, sent, dedup_key, payload in work:
        for action in actions_needed(state, sent):
            try:
                client.send(action, dedup_key, payload if action == "trigger" else None)
            except PagerDutyError as error:
                _failed(database, alert_id, now, error)
                break
            _sent(database, alert_id, action)
            done.append(f"{alert_id}:{action}")
    return done


def _payload(alert: Alert, key: Key) -> dict[str, Any]:
    signals = ", ".join(alert.signals) or "anomalous usage"
    return {
        "summary": redact(f"Unusual traffic on {key.name} ({key.environment}): {signals}")[:1024],
        "source": "keybot",
        "severity": "critical" if key.environment == "production" else "warning",
        "component": key.name[:200],
        "custom_details": {"alert_id": alert.id, "score": round(float(alert.score), 4), "key_id": key.id},
    }


def _sent(database: Database, alert_id: int, action: str) -> None:
    with database.session() as session:
        alert = session.get(Alert, alert_id)
        if alert is not None:
            alert.pagerduty_sent, alert.pagerduty_attempts, alert.pagerduty_retry_at = action, 0, None


def _failed(database: Database, alert_id: int, now: datetime, error: PagerDutyError) -> None:
    with database.session() as session:
        alert = session.get(Alert, alert_id)
        if alert is None:
            return
        alert.pagerduty_attempts += 1
        if error.permanent:
            alert.pagerduty_sent = "rejected"
        else:
            delay = min(3600.0, 30.0 * 2 ** min(alert.pagerduty_attempts, 10))
            alert.pagerduty_retry_at = now + timedelta(seconds=delay)
        log.warning(
            "pagerduty_failed", alert_id=alert_id, attempts=alert.pagerduty_attempts, error=redact(str(error))
        )
