"""Opening alerts from what the detector saw: one alert per key episode, deduplicated and rate-limited.

A further anomalous minute on a key with an open (or acknowledged) alert updates it (peak score, latest
signal, new signals) instead of opening another; the partial unique index on `alerts.key_id` makes that
hold even against a concurrent writer. After an alert closes, the same key is quiet for the cooldown
unless the score is markedly higher or a signal is new; a pattern marked "expected" does not page again.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.alerts.models import Alert
from bot.alerts.paging import enqueue_pages, pageable, paged_after, plan
from bot.alerts.settings import AlertSettings
from bot.alerts.types import ACTIVE_STATES, AlertState, PageStep
from bot.db.session import Database
from bot.registry.models import Key
from bot.reminders.models import KeyEvent

EXPECTED_SLACK = 1.1
"""A new episode within this factor of an "expected" pattern's levels counts as the same pattern."""


@dataclass(frozen=True)
class Finding:
    """One key's anomaly in one detection run: its peak score, signals and numbers at the peak."""

    key_id: int
    minute: datetime
    score: float
    signals: tuple[str, ...]
    observed: dict[str, float]
    baseline: dict[str, float]


def raise_alerts(
    database: Database, findings: Sequence[Finding], now: datetime, settings: AlertSettings
) -> dict[int, str]:
    """Open or update an alert per finding; returns {alert id: "opened" | "updated"} (suppressed: absent)."""
    done: dict[int, str] = {}
    with database.session() as session:
        for finding in merge(findings):
            outcome = _raise_one(session, finding, now, settings)
            if outcome is not None:
                done[outcome[0]] = outcome[1]
    return done


def merge(findings: Sequence[Finding]) -> list[Finding]:
    """One finding per key (a spike and a new address in the same pass are one page with both signals)."""
    by_key: dict[int, Finding] = {}
    for f in findings:
        seen = by_key.get(f.key_id)
        if seen is None:
            by_key[f.key_id] = f
            continue
        by_key[f.key_id] = Finding(
            key_id=f.key_id,
            minute=max(seen.minute, f.minute),
            score=max(seen.score, f.score),
            signals=tuple(dict.fromkeys((*seen.signals, *f.signals))),
            observed={**f.observed, **seen.observed},
            baseline={**f.baseline, **seen.baseline},
        )
    return list(by_key.values())


def _raise_one(
    session: Session, finding: Finding, now: datetime, settings: AlertSettings
) -> tuple[int, str] | None:
    key = session.get(Key, finding.key_id)
    if key is None or not pageable(key):
        return None
    active = session.scalars(
        select(Alert).where(Alert.key_id == key.id, Alert.state.in_(ACTIVE_STATES))
    ).first()
    if active is not None:
        _update(session, active, finding)
        return active.id, "updated"
    if _suppressed(session, finding, now, settings):
        return None
    alert = Alert(
        key_id=key.id,
        state=AlertState.OPEN,
        version=1,
        signals=list(finding.signals),
        score=float(finding.score),
        observed=dict(finding.observed),
        baseline=dict(finding.baseline),
        opened_at=now,
        last_signal_at=finding.minute,
        step=PageStep.OWNER,
        paged=[],
        pagerduty_key=f"keybot-alert-{secrets.token_hex(10)}",
        pagerduty_attempts=0,
    )
    try:
        with session.begin_nested():
            session.add(alert)
            session.flush()
    except IntegrityError:  # another writer opened this key's episode first
        return None
    chain = settings.chain(key.team.escalation if key.team else None)
    outcome = plan(key, chain, step=PageStep.OWNER, opened_at=now, now=now, at_open=True)
    alert.step, alert.next_step_at = outcome.step, outcome.next_step_at
    alert.paged = paged_after([], outcome.pages)
    data = {"alert_id": alert.id, "signals": list(finding.signals), "score": round(finding.score, 4)}
    session.add(KeyEvent(key_id=key.id, at=now, actor="keybot", kind="alert.opened", data=data))
    enqueue_pages(session, alert, key, outcome.pages, now)
    return alert.id, "opened"


def _update(session: Session, alert: Alert, finding: Finding) -> None:
    """Fold a further anomalous minute into the episode; new signals are written to the timeline."""
    alert.last_signal_at = max(alert.last_signal_at, finding.minute)
    if finding.score > alert.score:
        alert.score = float(finding.score)
    new = [s for s in finding.signals if s not in alert.signals]
    if new:
        alert.signals = [*alert.signals, *new]
        data = {"alert_id": alert.id, "signals": new}
        session.add(
            KeyEvent(key_id=alert.key_id, at=finding.minute, actor="keybot", kind="alert.updated", data=data)
        )
    observed = dict(alert.observed)
    baseline = dict(alert.baseline)
    for metric, value in finding.observed.items():
        if value > observed.get(metric, float("-inf")):
            observed[metric] = float(value)
            baseline.setdefault(metric, float(finding.baseline.get(metric, 0.0)))
    alert.observed, alert.baseline = observed, baseline


def _suppressed(session: Session, finding: Finding, now: datetime, settings: AlertSettings) -> bool:
    closed = session.scalars(
        select(Alert)
        .where(Alert.key_id == finding.key_id, Alert.state.not_in(ACTIVE_STATES))
        .order_by(Alert.closed_at.desc(), Alert.id.desc())
        .limit(20)
    ).all()
    if not closed:
        return False
    last = closed[0]
    same_signals = set(finding.signals) <= set(last.signals)
    if last.closed_at is not None and now - last.closed_at < timedelta(minutes=settings.cooldown_minutes):
        markedly_higher = (1.0 - finding.score) * settings.reopen_ratio <= (1.0 - last.score)
        if same_signals and not markedly_higher:
            return True
    horizon = now - timedelta(days=settings.expected_days)
    for alert in closed:
        recent = alert.closed_at is not None and alert.closed_at >= horizon
        if alert.state is AlertState.FALSE_POSITIVE and recent and _within_pattern(finding, alert):
            return True
    return False


def _within_pattern(finding: Finding, expected: Alert) -> bool:
    """The same signals, at levels no higher than (about) the ones someone said were expected."""
    pattern = expected.pattern or {}
    levels: dict[str, float] = pattern.get("observed", {})
    if not set(finding.signals) <= set(pattern.get("signals", [])):
        return False
    return all(
        value <= levels.get(metric, 0.0) * EXPECTED_SLACK for metric, value in finding.observed.items()
    )
