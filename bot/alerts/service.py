"""The decisions people make on an alert, and the reads surfaces render.

Every decision checks the access policy inside the transaction that applies it, is bound to the alert
version the person saw, is written to the key's timeline, and stops the escalation chain when it closes or
acknowledges the alert. A refused or stale decision changes no row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.access.policy import Actor, Decision, Policy, Subject
from bot.alerts.chart import ChartData, chart_data
from bot.alerts.models import Alert, DetectorState
from bot.alerts.paging import enqueue_update
from bot.alerts.types import ACTIVE_STATES, AlertNotFound, AlertState, AlertView, StaleAlert
from bot.db.base import utcnow
from bot.db.session import Database
from bot.registry.models import Key, OwnerRole, Team
from bot.reminders.models import KeyEvent
from bot.runbooks import names
from bot.runbooks.decisions import lock_row
from bot.runbooks.definitions import RunbookDefinition
from bot.runbooks.service import start_run

__all__ = [
    "AlertNotFound", "StaleAlert", "acknowledge", "chart_points", "get_alert", "mark_expected",
    "open_alerts", "resolve", "revoke_now",
]  # fmt: skip


def view(alert: Alert, key: Key) -> AlertView:
    return AlertView(
        id=alert.id,
        key_id=key.id,
        key_name=key.name,
        environment=key.environment,
        state=alert.state,
        version=alert.version,
        signals=tuple(alert.signals),
        score=float(alert.score),
        observed={k: float(v) for k, v in alert.observed.items()},
        baseline={k: float(v) for k, v in alert.baseline.items()},
        opened_at=alert.opened_at,
        acked_by=alert.acked_by,
        step=alert.step,
        next_step_at=alert.next_step_at,
        last_signal_at=alert.last_signal_at,
        closed_at=alert.closed_at,
        closed_by=alert.closed_by,
        run_id=alert.run_id,
    )


def subject_of(key: Key) -> Subject:
    return Subject(
        key.name,
        key.environment,
        tuple(key.owner_ids()),
        tuple(key.owner_ids(OwnerRole.BACKUP)),
        oncall_group=key.team.oncall_group if key.team else None,
    )


def _load(session: Session, alert_id: int, version: int) -> tuple[Alert, Key]:
    """The alert locked for a decision, and its key; refuses unknown, drill and stale alerts."""
    lock_row(session, Alert, alert_id)
    alert = session.get(Alert, alert_id, with_for_update=True)
    key = session.get(Key, alert.key_id) if alert is not None else None
    if alert is None or key is None or key.drill:
        raise AlertNotFound(f"no alert #{alert_id}; nothing changed")
    if alert.version != version:
        raise StaleAlert(
            f"alert #{alert_id} changed since you saw it (it is now {alert.state.value.replace('_', ' ')}); "
            "nothing changed"
        )
    return alert, key


def _apply(
    database: Database,
    alert_id: int,
    version: int,
    actor: Actor,
    decision: Decision,
    target: AlertState,
    policy: Policy | None,
    now: datetime | None,
) -> AlertView:
    now = now or utcnow()
    with database.session() as session:
        alert, key = _load(session, alert_id, version)
        (policy or Policy()).check(decision, actor, subject_of(key))
        if alert.state not in ACTIVE_STATES or (
            target is AlertState.ACKNOWLEDGED and alert.state is AlertState.ACKNOWLEDGED
        ):
            state = alert.state.value.replace("_", " ")
            raise StaleAlert(f"alert #{alert_id} is already {state}; nothing changed")
        alert.state = target
        alert.version += 1
        alert.next_step_at = None
        if target is AlertState.ACKNOWLEDGED:
            alert.acked_at, alert.acked_by = now, actor.id
        else:
            alert.closed_at, alert.closed_by = now, actor.id
        kind = {
            AlertState.ACKNOWLEDGED: "alert.acknowledged",
            AlertState.FALSE_POSITIVE: "alert.expected",
            AlertState.RESOLVED: "alert.resolved",
        }[target]
        data: dict[str, object] = {"alert_id": alert.id}
        if target is AlertState.FALSE_POSITIVE:
            alert.pattern = {
                "signals": list(alert.signals),
                "observed": dict(alert.observed),
                "baseline": dict(alert.baseline),
                "score": float(alert.score),
            }
            data["pattern"] = alert.pattern
            session.execute(
                update(DetectorState).where(DetectorState.key_id == key.id).values(absorb_pending=True)
            )
        session.add(KeyEvent(key_id=key.id, at=now, actor=actor.id, kind=kind, data=data))
        enqueue_update(session, alert, key, actor.id)
        session.flush()
        return view(alert, key)


def acknowledge(
    database: Database,
    alert_id: int,
    version: int,
    actor: Actor,
    *,
    policy: Policy | None = None,
    now: datetime | None = None,
) -> AlertView:
    """Someone is looking: the chain stops and everyone paged hears who took it.

    `policy` carries the admins and revokers (the runtime's); without it only owners, backups and the
    team's on-call group may decide."""
    return _apply(
        database, alert_id, version, actor, Decision.ACK_ALERT, AlertState.ACKNOWLEDGED, policy, now
    )


def mark_expected(
    database: Database,
    alert_id: int,
    version: int,
    actor: Actor,
    *,
    policy: Policy | None = None,
    now: datetime | None = None,
) -> AlertView:
    """ "That was me": a false positive whose pattern is recorded, and the key's detector baseline is
    raised to it on the detection job's next run (`detector_states.absorb_pending`)."""
    return _apply(
        database, alert_id, version, actor, Decision.ALERT_EXPECTED, AlertState.FALSE_POSITIVE, policy, now
    )


def resolve(
    database: Database,
    alert_id: int,
    version: int,
    actor: Actor,
    *,
    policy: Policy | None = None,
    now: datetime | None = None,
) -> AlertView:
    """The episode is over (handled, or the key was dealt with)."""
    return _apply(
        database, alert_id, version, actor, Decision.RESOLVE_ALERT, AlertState.RESOLVED, policy, now
    )


def revoke_now(
    database: Database,
    runbooks: dict[str, RunbookDefinition],
    policy: Policy,
    alert_id: int,
    version: int,
    actor: Actor,
    *,
    now: datetime | None = None,
) -> str:
    """Start the emergency revoke of the alert's key (the emergency-start policy applies); returns the run
    id. The alert records the run and, when still open, is acknowledged by the person, stopping the chain.
    A refusal (policy, stale version, a run already on the key) changes no row."""
    with database.session() as session:
        alert, key = _load(session, alert_id, version)
        if alert.state not in ACTIVE_STATES:
            raise StaleAlert(
                f"alert #{alert_id} is already {alert.state.value.replace('_', ' ')}; start a revoke with "
                f"/revoke-key {key.name} instead; nothing changed"
            )
        policy.check(Decision.START, actor, subject_of(key))
        signals = ", ".join(alert.signals)[:300] or "anomalous usage"
        key_id = key.id
    run_id = start_run(
        database,
        runbooks,
        policy=policy,
        key_id=key_id,
        runbook=names.REVOKE,
        mode="emergency",
        actor=actor.id,
        in_revoker_group=actor.in_revoker_group,
        reason=f"anomalous traffic (alert #{alert_id}): {signals}",
    )
    now = now or utcnow()
    with database.session() as session:
        lock_row(session, Alert, alert_id)
        row = session.get(Alert, alert_id, with_for_update=True)
        key_row = session.get(Key, key_id)
        assert row is not None and key_row is not None
        alert = row
        alert.run_id = run_id
        alert.version += 1
        if alert.state is AlertState.OPEN:
            alert.state, alert.acked_at, alert.acked_by = AlertState.ACKNOWLEDGED, now, actor.id
            alert.next_step_at = None
            enqueue_update(session, alert, key_row, actor.id)
        session.add(
            KeyEvent(
                key_id=key_id,
                at=now,
                actor=actor.id,
                kind="alert.revoke_started",
                data={"alert_id": alert_id, "run_id": run_id},
            )
        )
    return run_id


def open_alerts(session: Session, key_ids: Sequence[int] | None = None) -> list[AlertView]:
    """Open and acknowledged alerts, newest first (never on drill keys)."""
    query = (
        select(Alert, Key)
        .join(Key, Key.id == Alert.key_id)
        .where(Alert.state.in_(ACTIVE_STATES), Key.drill.is_(False))
        .order_by(Alert.opened_at.desc(), Alert.id.desc())
    )
    if key_ids is not None:
        query = query.where(Alert.key_id.in_(list(key_ids)))
    return [view(alert, key) for alert, key in session.execute(query).all()]


def recent_alerts(session: Session, *, limit: int = 50, include_closed: bool = True) -> list[AlertView]:
    """The latest alerts, any state, newest first (the CLI's list)."""
    query = select(Alert, Key).join(Key, Key.id == Alert.key_id).where(Key.drill.is_(False))
    if not include_closed:
        query = query.where(Alert.state.in_(ACTIVE_STATES))
    query = query.order_by(Alert.opened_at.desc(), Alert.id.desc()).limit(limit)
    return [view(alert, key) for alert, key in session.execute(query).all()]


def get_alert(session: Session, alert_id: int) -> AlertView | None:
    row = session.execute(
        select(Alert, Key).join(Key, Key.id == Alert.key_id).where(Alert.id == alert_id, Key.drill.is_(False))
    ).first()
    return view(row[0], row[1]) if row is not None else None


def chart_points(session: Session, alert_id: int, hours: int = 6) -> ChartData:
    """The alert's main metric over the last `hours` (to its latest signal) against its baseline."""
    found = get_alert(session, alert_id)
    if found is None:
        raise AlertNotFound(f"no alert #{alert_id}")
    return chart_data(session, found, hours=hours)


def oncall_groups(database: Database, alert_id: int) -> tuple[str, ...]:
    """The user group whose members may answer this alert besides owners and staff (its team's on-call)."""
    with database.session() as session:
        group = session.scalar(
            select(Team.oncall_group)
            .join(Key, Key.team_id == Team.id)
            .join(Alert, Alert.key_id == Key.id)
            .where(Alert.id == alert_id)
        )
    return (group,) if group else ()
