"""Domain end to end with an injected clock: usage written through the usage store, the detection job,
the owner's page, each escalation at its time, Acknowledge stopping the chain, Expected suppressing the
same spike next time, Revoke now starting the emergency runbook, and a new source address as a signal."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import select

from bot.access.policy import Actor
from bot.alerts import service
from bot.alerts.detect import run_detection
from bot.alerts.escalation import run_escalations
from bot.alerts.models import DetectorState
from bot.alerts.types import AlertState
from bot.config import BUILTIN_RUNBOOKS
from bot.db.session import Database
from bot.runbooks.definitions import load_runbooks
from bot.runbooks.models import Run
from bot.usage.service import record_lines
from bot.usage.types import UsageLine
from tests.alerts_helpers import (
    BACKUP,
    CHANNEL,
    MANAGER,
    NOW,
    OWNER,
    POLICY,
    add_key,
    add_team,
    pages,
    settings,
)

START = NOW - timedelta(hours=3)
HISTORY = 180
SETTLE = timedelta(minutes=2)  # a minute is scored once it is over and one more has passed for late lines


def _traffic(
    database: Database, keys: list[int], first: int, count: int, *, spike: int | None = None
) -> datetime:
    """Normal traffic (about 30 requests a minute) on every key for `count` minutes from minute `first`;
    `spike` requests a minute on the first key instead. Returns the last minute written."""
    rng = np.random.default_rng(first)
    lines = []
    for i in range(first, first + count):
        minute = START + timedelta(minutes=i)
        for n, key in enumerate(keys):
            requests = spike if spike is not None and n == 0 else int(rng.poisson(30))
            lines.append(
                UsageLine(
                    key, minute, requests=requests, input_tokens=requests * 100, status={"200": requests}
                )
            )
    record_lines(database, lines, source="ingest")
    return START + timedelta(minutes=first + count - 1)


def _spiked(database: Database) -> tuple[int, int, datetime]:
    add_team(database)
    key, quiet = add_key(database), add_key(database, "quiet-key")
    _traffic(database, [key, quiet], 0, HISTORY)
    first = run_detection(database, NOW + SETTLE - timedelta(minutes=1), settings())
    assert first.opened == [] and first.keys == 2 and first.minutes == HISTORY
    last = _traffic(database, [key, quiet], HISTORY, 3, spike=900)
    found = run_detection(database, last + SETTLE, settings())
    assert len(found.opened) == 1
    return key, found.opened[0], last + SETTLE


def test_a_spike_pages_the_owner_then_each_step_at_its_time(database: Database) -> None:
    key, alert_id, opened = _spiked(database)
    with database.session() as session:
        view = service.get_alert(session, alert_id)
        assert session.scalars(select(DetectorState.last_minute).distinct()).all() == [opened - SETTLE]
    assert view is not None and view.key_id == key and "requests" in view.signals and view.score >= 0.98
    assert view.observed["requests"] == 900.0 and view.baseline["requests"] < 60
    assert [(r, f["step"]) for _d, r, f in pages(database)] == [(OWNER, "owner")]
    s = settings()
    for minutes, expected in ((14, []), (15, ["backup"]), (29, []), (30, ["channel"]), (60, ["manager"])):
        done = run_escalations(database, opened + timedelta(minutes=minutes), s)
        assert done == [f"{alert_id}:{step}" for step in expected], minutes
    assert [r for _d, r, _f in pages(database)] == [OWNER, BACKUP, CHANNEL, MANAGER]
    assert pages(database)[2][2]["mention"] == "<!subteam^S0ONCALL1>"


def test_acknowledge_stops_the_chain(database: Database) -> None:
    _key, alert_id, opened = _spiked(database)
    run_escalations(database, opened + timedelta(minutes=15), settings())
    service.acknowledge(database, alert_id, 1, Actor(OWNER))
    assert run_escalations(database, opened + timedelta(hours=2), settings()) == []
    assert [r for _d, r, _f in pages(database)] == [OWNER, BACKUP]


def test_expected_suppresses_the_same_pattern_next_time(database: Database) -> None:
    key, alert_id, opened = _spiked(database)
    service.mark_expected(database, alert_id, 1, Actor(OWNER), now=opened)
    s = settings(cooldown_minutes=0)
    last = _traffic(database, [key], HISTORY + 3, 60)
    assert run_detection(database, last + SETTLE, s).opened == []
    with database.session() as session:
        assert session.scalars(select(DetectorState.absorb_pending).distinct()).all() == [False]
    last = _traffic(database, [key], HISTORY + 63, 3, spike=900)
    again = run_detection(database, last + SETTLE, s)
    assert again.signalled == [] and again.opened == []  # the detector's baseline rose: not even a finding
    with database.session() as session:
        assert service.open_alerts(session) == []
    last = _traffic(database, [key], HISTORY + 66, 30)
    last = _traffic(database, [key], HISTORY + 96, 3, spike=20000)
    assert (
        len(run_detection(database, last + SETTLE, s).opened) == 1
    )  # not a mute: a far larger spike still pages


def test_revoke_now_starts_the_emergency_runbook(database: Database) -> None:
    key, alert_id, _opened = _spiked(database)
    run_id = service.revoke_now(database, load_runbooks(BUILTIN_RUNBOOKS), POLICY, alert_id, 1, Actor(OWNER))
    with database.session() as session:
        run = session.get(Run, run_id)
        assert run is not None and (run.key_id, run.mode) == (key, "emergency")
        view = service.get_alert(session, alert_id)
    assert view is not None and view.state is AlertState.ACKNOWLEDGED and view.run_id == run_id


def test_a_new_source_address_after_the_learning_window_is_its_own_signal(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYBOT_USAGE_LEARNING_HOURS", "1")
    add_team(database)
    key = add_key(database)
    steady = [
        UsageLine(key, START + timedelta(minutes=i), requests=30, source_ip="198.51.100.1")
        for i in range(150)
    ]
    record_lines(database, steady[:100], source="ingest")
    assert run_detection(database, START + timedelta(minutes=101), settings()).opened == []
    later = START + timedelta(minutes=150)
    record_lines(
        database,
        [*steady[100:], UsageLine(key, later, requests=30, source_ip="203.0.113.7")],
        source="ingest",
    )
    found = run_detection(database, later + SETTLE, settings())
    assert len(found.opened) == 1
    with database.session() as session:
        view = service.get_alert(session, found.opened[0])
    assert view is not None and view.signals == ("new source address 203.0.113.7",)
    assert (
        run_detection(database, later + SETTLE + timedelta(minutes=1), settings()).opened == []
    )  # seen once only


def test_a_minute_still_being_written_is_not_scored_until_it_has_settled(database: Database) -> None:
    add_team(database)
    key = add_key(database)
    last = _traffic(database, [key], 0, HISTORY)
    run_detection(database, last + timedelta(seconds=30), settings())  # `last` is the current minute
    with database.session() as session:
        assert session.scalars(select(DetectorState.last_minute).distinct()).all() == [last - SETTLE]
    run_detection(database, last + SETTLE, settings())
    with database.session() as session:
        assert session.scalars(select(DetectorState.last_minute).distinct()).all() == [last]
