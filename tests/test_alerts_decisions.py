"""Acknowledge, expected, resolve and revoke now: each permission-checked inside its transaction, bound
to the version the person saw, on the key's timeline, and each refusal leaves every row as it was."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from bot.access.policy import Actor, NotAllowed, Policy, Roster
from bot.alerts import service
from bot.alerts.models import Alert, DetectorState
from bot.alerts.opening import raise_alerts
from bot.alerts.types import AlertState, StaleAlert
from bot.config import BUILTIN_RUNBOOKS
from bot.db.session import Database
from bot.runbooks.definitions import load_runbooks
from bot.runbooks.models import Run
from tests.alerts_helpers import (
    ADMIN,
    BACKUP,
    NOW,
    ONCALL,
    OWNER,
    POLICY,
    STRANGER,
    add_key,
    add_team,
    alert_row,
    counts,
    events,
    finding,
    pages,
    settings,
)  # fmt: skip

DECISIONS: dict[str, Callable[..., Any]] = {
    "acknowledge": service.acknowledge,
    "expected": service.mark_expected,
    "resolve": service.resolve,
}


def _open(database: Database) -> tuple[int, int]:
    add_team(database)
    key = add_key(database)
    (alert_id,) = raise_alerts(database, [finding(key)], NOW, settings())
    return key, alert_id


@pytest.mark.parametrize("name", sorted(DECISIONS))
def test_a_stranger_is_refused_naming_who_may_and_nothing_changes(database: Database, name: str) -> None:
    _key, alert_id = _open(database)
    before, row = counts(database), alert_row(database, alert_id)
    with pytest.raises(NotAllowed, match=r"You may not .*pay-prod.*<@U0OWNER01>.*<@U0ADMIN01>.*S0ONCALL1"):
        DECISIONS[name](database, alert_id, 1, Actor(STRANGER), policy=POLICY)
    assert counts(database) == before and alert_row(database, alert_id) == row


@pytest.mark.parametrize("name", sorted(DECISIONS))
def test_a_stale_version_is_refused_and_nothing_changes(database: Database, name: str) -> None:
    _key, alert_id = _open(database)
    before, row = counts(database), alert_row(database, alert_id)
    with pytest.raises(StaleAlert, match="changed since you saw it"):
        DECISIONS[name](database, alert_id, 7, Actor(OWNER), policy=POLICY)
    assert counts(database) == before and alert_row(database, alert_id) == row


def test_unknown_alerts_are_refused_clearly(database: Database) -> None:
    with pytest.raises(service.AlertNotFound, match="no alert #999"):
        service.acknowledge(database, 999, 1, Actor(OWNER))


def test_acknowledge_stops_the_chain_and_tells_everyone_paged(database: Database) -> None:
    key, alert_id = _open(database)
    view = service.acknowledge(database, alert_id, 1, Actor(BACKUP), now=NOW)
    assert (view.state, view.version, view.acked_by, view.next_step_at) == (
        AlertState.ACKNOWLEDGED,
        2,
        BACKUP,
        None,
    )
    ((dedupe, recipient, facts),) = pages(database, "alert_update")
    assert (dedupe, recipient) == (f"alert:{alert_id}:update:2:{OWNER}", OWNER)
    assert facts["state"] == "acknowledged" and facts["by"] == BACKUP
    assert events(database, key) == ["alert.opened", "alert.acknowledged"]
    with pytest.raises(StaleAlert, match="already acknowledged"):
        service.acknowledge(database, alert_id, 2, Actor(OWNER))
    closed = service.resolve(database, alert_id, 2, Actor(OWNER))
    assert closed.state is AlertState.RESOLVED and closed.closed_by == OWNER
    with database.session() as session:
        assert service.open_alerts(session) == []


def test_the_oncall_group_and_admins_may_decide(database: Database) -> None:
    _key, alert_id = _open(database)
    oncall = Actor("U0ONCALL9", groups=frozenset({ONCALL}))
    assert service.acknowledge(database, alert_id, 1, oncall).acked_by == "U0ONCALL9"
    with pytest.raises(NotAllowed):
        service.resolve(database, alert_id, 2, Actor(ADMIN))  # no policy: admins are not known
    assert service.resolve(database, alert_id, 2, Actor(ADMIN), policy=POLICY).state is AlertState.RESOLVED


def test_expected_records_the_pattern_and_asks_the_detector_to_absorb_it(database: Database) -> None:
    key, alert_id = _open(database)
    with database.session() as session:
        session.add(DetectorState(key_id=key, metric="requests", blob=b"x", last_minute=NOW))
    view = service.mark_expected(database, alert_id, 1, Actor(OWNER), now=NOW)
    assert view.state is AlertState.FALSE_POSITIVE
    with database.session() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None and alert.pattern is not None
        assert alert.pattern["observed"] == {"requests": 900.0} and alert.pattern["signals"] == ["requests"]
        assert session.scalars(select(DetectorState.absorb_pending)).all() == [True]
    assert events(database, key)[-1] == "alert.expected"
    same = finding(key, minute=NOW, requests=950.0)  # after the cooldown: the same level stays quiet
    later = NOW.replace(hour=15)
    assert raise_alerts(database, [same], later, settings()) == {}
    bigger = finding(key, minute=later, requests=5000.0)
    assert list(raise_alerts(database, [bigger], later, settings()).values()) == ["opened"]


def test_revoke_now_starts_the_emergency_runbook_and_records_the_run(database: Database) -> None:
    key, alert_id = _open(database)
    runbooks = load_runbooks(BUILTIN_RUNBOOKS)
    run_id = service.revoke_now(database, runbooks, POLICY, alert_id, 1, Actor(OWNER))
    with database.session() as session:
        run = session.get(Run, run_id)
        assert run is not None and run.key_id == key and run.mode == "emergency"
        view = service.get_alert(session, alert_id)
    assert view is not None and view.run_id == run_id and view.state is AlertState.ACKNOWLEDGED
    assert view.next_step_at is None
    assert events(database, key)[-1] == "alert.revoke_started"


def test_revoke_now_refused_for_a_stranger_or_a_stale_version_changes_nothing(database: Database) -> None:
    _key, alert_id = _open(database)
    runbooks = load_runbooks(BUILTIN_RUNBOOKS)
    policy = Policy(Roster(admins=frozenset({ADMIN}), revokers=frozenset({ADMIN})))
    before, row = counts(database), alert_row(database, alert_id)
    with pytest.raises(NotAllowed, match="may not revoke pay-prod"):
        service.revoke_now(database, runbooks, policy, alert_id, 1, Actor(STRANGER))
    with pytest.raises(StaleAlert):
        service.revoke_now(database, runbooks, policy, alert_id, 3, Actor(OWNER))
    assert counts(database) == before and alert_row(database, alert_id) == row
    with database.session() as session:
        assert session.scalars(select(Run)).all() == []


def test_revoke_now_on_a_key_with_a_run_already_leaves_the_alert_as_it_was(database: Database) -> None:
    key, alert_id = _open(database)
    runbooks = load_runbooks(BUILTIN_RUNBOOKS)
    from bot.runbooks.service import KeyBusy, start_run

    start_run(database, runbooks, policy=POLICY, key_id=key, runbook="revoke-replace-audit-notify",
              mode="staged", actor=OWNER, reason="leaked in a gist")  # fmt: skip
    before, row = counts(database), alert_row(database, alert_id)
    with pytest.raises(KeyBusy):
        service.revoke_now(database, runbooks, POLICY, alert_id, 1, Actor(OWNER))
    assert counts(database) == before and alert_row(database, alert_id) == row
