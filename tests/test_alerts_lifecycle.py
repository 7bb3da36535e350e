"""Alert episodes: one open alert per key, updated by further minutes, rate-limited after it closes,
never for drill or revoked keys; the owner's page at open with the contract's facts; settings and chains."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bot.access.policy import Actor
from bot.alerts import service
from bot.alerts.chain import check_chain, parse_chain
from bot.alerts.models import Alert
from bot.alerts.opening import raise_alerts
from bot.alerts.settings import alert_settings
from bot.alerts.types import AlertState, PageStep
from bot.config import ConfigError
from bot.db.session import Database
from bot.registry.models import KeyStatus
from tests.alerts_helpers import (
    CHANNEL,
    NOW,
    OWNER,
    add_key,
    add_team,
    events,
    finding,
    pages,
    settings,
)  # fmt: skip


def test_an_anomaly_opens_one_alert_and_pages_the_owner_with_the_contract_facts(database: Database) -> None:
    add_team(database)
    key = add_key(database)
    done = raise_alerts(database, [finding(key)], NOW, settings())
    (alert_id,) = done
    assert done[alert_id] == "opened"
    ((dedupe, recipient, facts),) = pages(database)
    assert (dedupe, recipient) == (f"alert:{alert_id}:owner:{OWNER}", OWNER)
    assert facts == {
        "alert_id": alert_id, "alert_version": 1, "key_id": key, "key_name": "pay-prod",
        "environment": "production", "step": "owner", "signals": ["requests"],
        "observed": {"requests": 900.0}, "baseline": {"requests": 30.0}, "score": 0.999,
        "opened_at": NOW.isoformat(),
    }  # fmt: skip
    with database.session() as session:
        view = service.get_alert(session, alert_id)
    assert view is not None and view.state is AlertState.OPEN and view.step is PageStep.OWNER
    assert view.next_step_at == NOW + timedelta(minutes=15)
    assert events(database, key) == ["alert.opened"]


def test_further_minutes_update_the_episode_instead_of_opening_another(database: Database) -> None:
    add_team(database)
    key = add_key(database)
    (first,) = raise_alerts(database, [finding(key, score=0.99)], NOW, settings())
    later = NOW + timedelta(minutes=3)
    again = finding(key, score=0.9999, minute=later, requests=2000.0)
    novel = again.__class__(key, later, 1.0, ("new source address 203.0.113.7",), {}, {})
    assert raise_alerts(database, [again, novel], later, settings()) == {first: "updated"}
    with database.session() as session:
        (view,) = service.open_alerts(session)
    assert view.id == first and view.version == 1 and view.score == 1.0
    assert view.signals == ("requests", "new source address 203.0.113.7")
    assert view.observed == {"requests": 2000.0} and view.last_signal_at == later
    assert len(pages(database)) == 1
    assert events(database, key) == ["alert.opened", "alert.updated"]


def test_the_database_refuses_a_second_active_alert_for_a_key(database: Database) -> None:
    add_team(database)
    key = add_key(database)
    raise_alerts(database, [finding(key)], NOW, settings())
    with pytest.raises(IntegrityError), database.session() as session:
        session.add(Alert(key_id=key, opened_at=NOW, last_signal_at=NOW, pagerduty_key="x", paged=[]))
        session.flush()


def test_after_closing_the_same_key_is_quiet_for_the_cooldown_unless_markedly_worse(
    database: Database,
) -> None:
    add_team(database)
    key = add_key(database)
    (first,) = raise_alerts(database, [finding(key, score=0.99)], NOW, settings())
    service.resolve(database, first, 1, Actor(OWNER), now=NOW + timedelta(minutes=5))
    soon = NOW + timedelta(minutes=20)
    assert raise_alerts(database, [finding(key, score=0.995, minute=soon)], soon, settings()) == {}
    (second,) = raise_alerts(database, [finding(key, score=0.9995, minute=soon)], soon, settings())
    assert second != first
    service.resolve(database, second, 1, Actor(OWNER), now=soon)
    late = soon + timedelta(minutes=61)
    assert list(
        raise_alerts(database, [finding(key, score=0.99, minute=late)], late, settings()).values()
    ) == ["opened"]


def test_drill_and_revoked_keys_are_never_paged(database: Database) -> None:
    add_team(database)
    drill = add_key(database, "drill-copy", drill=True)
    revoked = add_key(database, "old", status=KeyStatus.REVOKED)
    assert raise_alerts(database, [finding(drill), finding(revoked)], NOW, settings()) == {}
    assert pages(database) == []


def test_without_owners_the_backup_is_paged_at_once(database: Database) -> None:
    add_team(database)
    key = add_key(database, owners=())
    (alert_id,) = raise_alerts(database, [finding(key)], NOW, settings())
    assert [(r, f["step"]) for _d, r, f in pages(database)] == [("U0BACKUP1", "backup")]
    with database.session() as session:
        view = service.get_alert(session, alert_id)
    assert view is not None and view.step is PageStep.BACKUP
    assert view.next_step_at == NOW + timedelta(minutes=30)
    assert CHANNEL not in [r for _d, r, _f in pages(database)]


def test_escalation_chains_parse_and_refuse_nonsense() -> None:
    chain = parse_chain(" backup:10 , manager:45")
    assert chain.text() == "backup:10,manager:45"
    assert parse_chain("none").steps == () and check_chain(None) is None and check_chain("") == "none"
    for bad in (
        "backup",
        "backup:x",
        "boss:5",
        "backup:0",
        "channel:30,backup:40,channel:50",
        "manager:9,backup:5",
    ):
        with pytest.raises(ValueError):
            parse_chain(bad)


def test_alert_settings_per_environment_thresholds_and_one_line_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KEYBOT_ALERT_THRESHOLDS", "production=0.95,staging=0.99")
    monkeypatch.setenv("KEYBOT_ALERT_THRESHOLD", "0.97")
    loaded = alert_settings()
    assert (
        loaded.threshold_for("production"),
        loaded.threshold_for("staging"),
        loaded.threshold_for("dev"),
    ) == (
        0.95,
        0.99,
        0.97,
    )
    monkeypatch.setenv("KEYBOT_ALERT_ESCALATION", "backup:99,channel:5")
    monkeypatch.setenv("KEYBOT_PAGERDUTY_ROUTING_KEY", "")
    with pytest.raises(ConfigError, match="KEYBOT_ALERT_ESCALATION: channel:5 must come later"):
        alert_settings()
    monkeypatch.setenv("KEYBOT_ALERT_ESCALATION", "backup:5")
    monkeypatch.setenv("KEYBOT_ALERT_THRESHOLDS", "production=2")
    with pytest.raises(ConfigError, match="KEYBOT_ALERT_THRESHOLDS"):
        alert_settings()


def test_a_team_chain_overrides_the_default(database: Database) -> None:
    add_team(database, escalation="manager:5")
    key = add_key(database)
    raise_alerts(database, [finding(key)], NOW, settings())
    with database.session() as session:
        alert = session.scalars(select(Alert)).one()
        assert alert.next_step_at == NOW + timedelta(minutes=5)
