"""The whole anomaly path with a real `keybot clock` process on accelerated time (one fake minute per real
second) and the real Bolt app: usage spikes written to the store → the clock's detector opens alerts → the
owner's DM (with its chart) arrives in Slack → with no answer, each escalation step comes at its time;
Acknowledge stops a chain; Revoke now starts the emergency runbook; Expected keeps the same spike quiet the
next time while an identical key whose alert was simply resolved is paged again.

Three quiet hours before the second spike are a jump of the fake clock, not three real minutes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select, update

from bot.access.policy import Actor
from bot.alerts import service
from bot.alerts.models import Alert
from bot.alerts.types import AlertState
from bot.notifications.models import Notification
from bot.registry.models import Key, Team
from bot.reminders.models import KeyEvent
from bot.runbooks.models import Run
from bot.slack import ids
from bot.slack.alerts import POSTED
from bot.usage.service import record_lines
from bot.usage.types import UsageLine
from tests.conftest import TEST_FINGERPRINT_KEY
from tests.slack_world import SIGNING_SECRET, SlackWorld, serving
from tests.standins.slack_api import SlackStandin
from tests.standins.slack_payloads import block_actions_body
from tests.world import World, unique_name

HOOK = Path(__file__).with_name("alerts_clock_hook.py")
START = datetime.now(UTC).replace(second=0, microsecond=0)
SPEED = 60.0  # one fake minute per real second
OWNER, BACKUP, MANAGER, ONCALL = "U0OWNER01", "U0BACKUP1", "U0MANAGER1", "S0ONCALL1"
FAST_CHAIN = "backup:1,channel:2,manager:3"  # minutes after the owner's page
SLOW_CHAIN = "backup:4,channel:8,manager:12"  # time to answer before the backup is paged
HISTORY = 180


@pytest.fixture
def sw(world: World, slack_standin: SlackStandin) -> Iterator[SlackWorld]:
    if world.database.engine.dialect.name != "sqlite":
        pytest.skip("the real-clock path runs once, on SQLite; the domain flow runs on both databases")
    with serving(world, slack_standin) as served:
        yield served


def add_key(world: World, label: str, chain: str) -> int:
    name = unique_name(label)
    key_id = world.add_key(name, "staging", owner=OWNER, backup=BACKUP, consumers=[])
    with world.database.session() as session:
        team_id = session.scalars(select(Key.team_id).where(Key.id == key_id)).one()
        session.execute(update(Team).where(Team.id == team_id).values(escalation=chain, oncall_group=ONCALL))
    return key_id


def traffic(world: World, keys: list[int], first: datetime, minutes: int, spiked: set[int]) -> None:
    """About 30 requests a minute on every key; the last 3 minutes at 900 on the `spiked` keys."""
    rng = np.random.default_rng(minutes)
    lines = []
    for i in range(minutes):
        minute = first + timedelta(minutes=i)
        for key in keys:
            n = 900 if key in spiked and i >= minutes - 3 else int(rng.poisson(30))
            lines.append(UsageLine(key, minute, requests=n, input_tokens=n * 100, status={"200": n}))
    record_lines(world.database, lines, source="ingest")


def start_clock(sw: SlackWorld, tmp_path: Path, epoch: float) -> subprocess.Popen[bytes]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "KEYBOT_", "DATABASE_", "OPENAI"))
    }
    env.update(
        DATABASE_URL=sw.world.database.url, KEYBOT_FINGERPRINT_KEY=TEST_FINGERPRINT_KEY,
        KEYBOT_LOG_LEVEL="WARNING", KEYBOT_CLOCK_TICK_SECONDS="0.2", KEYBOT_STATE_DIR=str(tmp_path / "state"),
        SLACK_BOT_TOKEN=sw.slack.bot_token, SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=sw.slack.base_url,
        KEYBOT_ALERT_COOLDOWN_MINUTES="0", KEYBOT_RUNBOOKS_DIR=str(Path(__file__).parents[1] / "runbooks"),
        TEST_FAKE_START=START.isoformat(), TEST_FAKE_EPOCH=str(epoch), TEST_FAKE_SPEED=str(SPEED),
        TEST_FAKE_JUMP_FILE=str(tmp_path / "jump"),
    )  # fmt: skip
    return subprocess.Popen(
        [sys.executable, str(HOOK)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def alert_of(sw: SlackWorld, key_id: int, *, state: AlertState | None = None) -> Alert | None:
    with sw.world.database.session() as session:
        query = select(Alert).where(Alert.key_id == key_id).order_by(Alert.id.desc())
        if state is not None:
            query = query.where(Alert.state == state)
        return session.scalars(query).first()


def owner_page(sw: SlackWorld, alert_id: int) -> tuple[str, str] | None:
    """Where the clock posted the owner's page for `alert_id` (channel, ts), once it has."""
    with sw.world.database.session() as session:
        for facts in session.scalars(
            select(Notification.facts).where(
                Notification.kind == "alert_page", Notification.recipient == OWNER
            )
        ):
            if facts.get("alert_id") == alert_id and POSTED in facts:
                return facts[POSTED]["channel"], facts[POSTED]["ts"]
    return None


def click(sw: SlackWorld, action: str, alert: Alert, where: tuple[str, str]) -> None:
    body = block_actions_body(
        action, ids.alert_ref(alert.id, alert.version).encode(), user_id=OWNER, channel_id=where[0],
        message_ts=where[1], response_url=sw.slack.response_url(OWNER),
    )  # fmt: skip
    assert sw.post(body).status == 200


def escalations(sw: SlackWorld, key_id: int) -> list[tuple[str, float, list[str]]]:
    """(step, fake minutes after the alert opened, recipients) of each escalation on the key's timeline."""
    alert = alert_of(sw, key_id)
    assert alert is not None
    with sw.world.database.session() as session:
        events = session.scalars(
            select(KeyEvent)
            .where(KeyEvent.key_id == key_id, KeyEvent.kind == "alert.escalated")
            .order_by(KeyEvent.id)
        ).all()
        return [
            (e.data["step"], (e.at - alert.opened_at).total_seconds() / 60, list(e.data["recipients"]))
            for e in events
        ]


def test_spikes_page_escalate_and_answer_through_a_real_clock(sw: SlackWorld, tmp_path: Path) -> None:
    chain, acked, revoked, expected, control = (
        add_key(sw.world, label, FAST_CHAIN if label == "chain" else SLOW_CHAIN)
        for label in ("chain", "acked", "revoked", "expected", "control")
    )
    keys = [chain, acked, revoked, expected, control]
    traffic(sw.world, keys, START - timedelta(minutes=HISTORY), HISTORY, spiked=set(keys))
    epoch = time.time() + 0.5
    clock = start_clock(sw, tmp_path, epoch)
    try:
        sw.wait(lambda: all(alert_of(sw, k) for k in keys), timeout=30, what="an alert on every spiked key")
        opened = {k: alert_of(sw, k) for k in keys}
        places = {}
        for key in (acked, revoked, expected, control):
            alert = opened[key]
            assert alert is not None
            sw.wait(lambda a=alert: owner_page(sw, a.id) is not None, what="the owner's DM")  # type: ignore[misc]
            places[key] = owner_page(sw, alert.id)
        click(sw, ids.ACK_ALERT, opened[acked], places[acked])  # type: ignore[arg-type]
        click(sw, ids.REVOKE_ALERT, opened[revoked], places[revoked])  # type: ignore[arg-type]
        click(sw, ids.EXPECTED_ALERT, opened[expected], places[expected])  # type: ignore[arg-type]
        control_alert = opened[control]
        assert control_alert is not None
        service.resolve(sw.world.database, control_alert.id, control_alert.version, Actor(OWNER))
        sw.wait(lambda: len(escalations(sw, chain)) == 3, timeout=20, what="the whole chain of the fast key")
        sw.wait(
            lambda: alert_of(sw, acked, state=AlertState.ACKNOWLEDGED) is not None, what="the acknowledgement"
        )
        sw.wait(lambda: alert_of(sw, expected, state=AlertState.FALSE_POSITIVE) is not None, what="expected")
        # the second spike, three quiet hours later
        (tmp_path / "jump").write_text(str(HISTORY * 60))
        traffic(sw.world, keys, START, HISTORY, spiked={expected, control})
        sw.wait(
            lambda: alert_of(sw, control, state=AlertState.OPEN) is not None, timeout=20, what="a new page"
        )
        waited_until = time.time() + 5 * 60 / SPEED  # past the slow chain's backup step (4 fake minutes)
        time.sleep(max(0.0, waited_until - time.time()))
    finally:
        clock.terminate()
        try:
            _out, err = clock.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            clock.kill()
            _out, err = clock.communicate()
    steps = escalations(sw, chain)
    assert [s for s, _, _ in steps] == ["backup", "channel", "manager"]
    for (_, after, _), due in zip(steps, (1, 2, 3), strict=True):
        assert due <= after < due + 0.75, f"step due after {due} fake minutes came after {after:.2f}"
    assert steps[0][2] == [BACKUP] and steps[2][2] == [MANAGER]
    channel_pages = [
        f
        for f in sw.slack.calls_to("chat.postMessage")
        if f"<!subteam^{ONCALL}>" in str(f.args.get("blocks"))
    ]
    assert channel_pages, "the team channel step mentions the on-call group"
    assert escalations(sw, acked) == [], "the acknowledgement stopped the chain before the backup step"
    assert escalations(sw, expected) == [], "an answered page is not escalated"
    with sw.world.database.session() as session:
        run = session.scalars(select(Run).where(Run.key_id == revoked)).one()
        assert run.mode == "emergency"
        expected_alerts = session.scalars(select(Alert).where(Alert.key_id == expected)).all()
        control_alerts = session.scalars(select(Alert).where(Alert.key_id == control)).all()
    assert len(expected_alerts) == 1, "Expected kept the same spike quiet the next time"
    assert len(control_alerts) == 2, "the same spike on a key without that feedback pages again"
    uploads = sw.slack.calls_to("files.completeUploadExternal")
    assert uploads, "the pages carry their chart"
    assert b"Traceback" not in err, err.decode(errors="replace")[-2000:]
