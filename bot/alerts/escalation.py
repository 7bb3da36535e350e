"""The clock's side of an alert: escalation at each deadline, and closing acknowledged alerts gone quiet.

The chain is a durable wait: `alerts.next_step_at` is the deadline, and nothing holds a thread in between.
Each due alert is claimed with a conditional UPDATE on (id, version, step), so two clocks never escalate
the same step twice (and the outbox's dedupe keys make a duplicate page impossible even then); a decision
taken meanwhile bumps the version and the claim finds nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update

from bot.alerts.models import Alert
from bot.alerts.paging import enqueue_pages, paged_after, plan
from bot.alerts.settings import AlertSettings
from bot.alerts.types import AlertState
from bot.db.session import Database
from bot.registry.models import Key
from bot.reminders.models import KeyEvent

BATCH = 200
"""Alerts handled per tick; the rest are due still and come at the next one."""


def run_escalations(database: Database, now: datetime, settings: AlertSettings) -> list[str]:
    """Page every due step; returns `<alert id>:<step>` for each step paged."""
    with database.session() as session:
        due = session.scalars(
            select(Alert.id)
            .where(Alert.state == AlertState.OPEN, Alert.next_step_at <= now)
            .order_by(Alert.next_step_at, Alert.id)
            .limit(BATCH)
        ).all()
    done: list[str] = []
    for alert_id in due:
        done.extend(_escalate(database, alert_id, now, settings))
    return done


def _escalate(database: Database, alert_id: int, now: datetime, settings: AlertSettings) -> list[str]:
    with database.session() as session:
        alert = session.get(Alert, alert_id)
        if alert is None or alert.state is not AlertState.OPEN or alert.next_step_at is None:
            return []
        key = session.get(Key, alert.key_id)
        if key is None:
            return []
        chain = settings.chain(key.team.escalation if key.team else None)
        outcome = plan(key, chain, step=alert.step, opened_at=alert.opened_at, now=now, at_open=False)
        version, step, paged = alert.version, alert.step, list(alert.paged)
        session.expunge(alert)
        claimed = session.execute(
            update(Alert)
            .where(
                Alert.id == alert_id,
                Alert.version == version,
                Alert.step == step,
                Alert.state == AlertState.OPEN,
            )
            .values(
                step=outcome.step,
                next_step_at=outcome.next_step_at,
                paged=paged_after(paged, outcome.pages),
            )
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            session.rollback()
            return []
        enqueue_pages(session, alert, key, outcome.pages, now)
    return [f"{alert_id}:{page.step.value}" for page in outcome.pages]


def resolve_quiet(database: Database, now: datetime, settings: AlertSettings) -> list[int]:
    """Resolve acknowledged alerts whose key has been quiet for KEYBOT_ALERT_QUIET_MINUTES.

    Open (unacknowledged) alerts are never closed by the clock: someone must have seen them."""
    quiet_since = now - timedelta(minutes=settings.quiet_minutes)
    with database.session() as session:
        due = session.scalars(
            select(Alert.id)
            .where(Alert.state == AlertState.ACKNOWLEDGED, Alert.last_signal_at <= quiet_since)
            .order_by(Alert.id)
            .limit(BATCH)
        ).all()
        resolved = []
        for alert_id in due:
            claimed = session.execute(
                update(Alert)
                .where(Alert.id == alert_id, Alert.state == AlertState.ACKNOWLEDGED)
                .values(
                    state=AlertState.RESOLVED,
                    version=Alert.version + 1,
                    closed_at=now,
                    closed_by="keybot",
                    next_step_at=None,
                )
                .returning(Alert.key_id)
            ).first()
            if claimed is None:
                continue
            data = {"alert_id": alert_id, "auto": True, "quiet_minutes": settings.quiet_minutes}
            session.add(KeyEvent(key_id=claimed[0], at=now, actor="keybot", kind="alert.resolved", data=data))
            resolved.append(alert_id)
    return resolved
