"""The escalation chain as a durable wait: each step at its deadline, each page once, skipped steps, two
clocks claiming the same step, acknowledged alerts resolved by the clock once the key is quiet."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from bot.access.policy import Actor
from bot.alerts import service
from bot.alerts.escalation import resolve_quiet, run_escalations
from bot.alerts.models import Alert
from bot.alerts.opening import raise_alerts
from bot.alerts.types import AlertState, PageStep
from bot.db.session import Database
from bot.registry.models import Key, KeyStatus
from tests.alerts_helpers import (
    BACKUP,
    CHANNEL,
    MANAGER,
    NOW,
    OWNER,
    add_key,
    add_team,
    events,
    finding,
    pages,
    settings,
)  # fmt: skip


def _minutes(n: int) -> timedelta:
    return timedelta(minutes=n)


def test_each_step_comes_at_its_time_once_with_the_oncall_mention(database: Database) -> None:
    add_team(database)
    key = add_key(database)
    (alert_id,) = raise_alerts(database, [finding(key)], NOW, settings())
    s = settings()
    assert run_escalations(database, NOW + _minutes(14), s) == []
    assert run_escalations(database, NOW + _minutes(15), s) == [f"{alert_id}:backup"]
    assert run_escalations(database, NOW + _minutes(16), s) == []
    assert run_escalations(database, NOW + _minutes(30), s) == [f"{alert_id}:channel"]
    assert run_escalations(database, NOW + _minutes(60), s) == [f"{alert_id}:manager"]
    assert run_escalations(database, NOW + _minutes(600), s) == []
    sent = pages(database)
    assert [(r, f["step"]) for _d, r, f in sent] == [
        (OWNER, "owner"),
        (BACKUP, "backup"),
        (CHANNEL, "channel"),
        (MANAGER, "manager"),
    ]
    assert sent[2][2]["mention"] == "<!subteam^S0ONCALL1>" and "mention" not in sent[1][2]
    assert [d for d, _r, _f in sent] == [f"alert:{alert_id}:{step}:{r}" for step, r in (
        ("owner", OWNER), ("backup", BACKUP), ("channel", CHANNEL), ("manager", MANAGER))]  # fmt: skip
    assert events(database, key) == ["alert.opened", "alert.escalated", "alert.escalated", "alert.escalated"]
    with database.session() as session:
        view = service.get_alert(session, alert_id)
    assert view is not None and view.step is PageStep.MANAGER and view.next_step_at is None


def test_a_clock_that_was_down_pages_every_missed_step_once(database: Database) -> None:
    add_team(database, manager=None)
    key = add_key(database)
    (alert_id,) = raise_alerts(database, [finding(key)], NOW, settings())
    assert run_escalations(database, NOW + _minutes(90), settings()) == [
        f"{alert_id}:backup",
        f"{alert_id}:channel",
    ]
    assert [f["step"] for _d, _r, f in pages(database)] == ["owner", "backup", "channel"]


def test_a_step_with_nobody_is_skipped_and_the_next_paged_at_once(database: Database) -> None:
    add_team(database, channel=None)
    key = add_key(database, backups=())
    (alert_id,) = raise_alerts(database, [finding(key)], NOW, settings())
    assert run_escalations(database, NOW + _minutes(15), settings()) == [f"{alert_id}:manager"]


def test_acknowledging_stops_the_chain(database: Database) -> None:
    add_team(database)
    key = add_key(database)
    (alert_id,) = raise_alerts(database, [finding(key)], NOW, settings())
    run_escalations(database, NOW + _minutes(15), settings())
    service.acknowledge(database, alert_id, 1, Actor(OWNER), now=NOW + _minutes(20))
    assert run_escalations(database, NOW + _minutes(120), settings()) == []
    assert [r for _d, r, _f in pages(database, "alert_update")] == [OWNER, BACKUP]


def test_a_claim_on_a_stale_step_pages_nobody(database: Database) -> None:
    """Two clocks read the same due alert: the second's conditional UPDATE finds the step moved on."""
    add_team(database)
    key = add_key(database)
    (alert_id,) = raise_alerts(database, [finding(key)], NOW, settings())
    from bot.alerts import escalation

    real_plan = escalation.plan
    raced: list[str] = []

    def racing_plan(*args: object, **kwargs: object) -> object:
        outcome = real_plan(*args, **kwargs)  # type: ignore[arg-type]
        if not raced:  # the other clock escalates in between
            raced.append("x")
            with database.session() as session:
                session.execute(update(Alert).where(Alert.id == alert_id).values(step=PageStep.BACKUP))
        return outcome

    escalation.plan = racing_plan  # type: ignore[assignment]
    try:
        assert run_escalations(database, NOW + _minutes(15), settings()) == []
    finally:
        escalation.plan = real_plan
    assert [f["step"] for _d, _r, f in pages(database)] == ["owner"]


def test_a_key_revoked_meanwhile_ends_the_chain_without_pages(database: Database) -> None:
    add_team(database)
    key = add_key(database)
    (alert_id,) = raise_alerts(database, [finding(key)], NOW, settings())
    with database.session() as session:
        session.execute(update(Key).where(Key.id == key).values(status=KeyStatus.REVOKED))
    assert run_escalations(database, NOW + _minutes(15), settings()) == []
    with database.session() as session:
        view = service.get_alert(session, alert_id)
    assert view is not None and view.next_step_at is None and len(pages(database)) == 1


def test_acknowledged_alerts_are_resolved_once_the_key_is_quiet(database: Database) -> None:
    add_team(database)
    key = add_key(database)
    (alert_id,) = raise_alerts(database, [finding(key)], NOW, settings())
    other = add_key(database, "other")
    (open_id,) = raise_alerts(database, [finding(other)], NOW, settings())
    service.acknowledge(database, alert_id, 1, Actor(OWNER), now=NOW)
    s = settings(quiet_minutes=30)
    assert resolve_quiet(database, NOW + _minutes(29), s) == []
    assert resolve_quiet(database, NOW + _minutes(30), s) == [alert_id]
    with database.session() as session:
        done, still = service.get_alert(session, alert_id), service.get_alert(session, open_id)
    assert done is not None and done.state is AlertState.RESOLVED and done.closed_by == "keybot"
    assert still is not None and still.state is AlertState.OPEN
    assert events(database, key)[-1] == "alert.resolved"
