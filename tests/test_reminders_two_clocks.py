"""Two real `keybot clock` processes, one PostgreSQL database, several days of accelerated time: every
reminder is posted exactly once, and killing the leader hands over to the standby with none lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.db.session import Database
from bot.notifications.models import Notification
from bot.reminders.models import ReminderDay
from bot.scheduling.models import LeaderLease
from tests.conftest import TEST_FINGERPRINT_KEY
from tests.reminders_helpers import add_key, add_team

HOOK = Path(__file__).with_name("reminder_clock_hook.py")
START = datetime(2026, 3, 1, 15, 0, tzinfo=UTC)  # Sunday; no slot within 5 fake hours either side
SPEED = 8100.0  # 2.25 fake hours per real second
LEASE_SECONDS = 2.0  # 4.5 fake hours: a failover never spans a whole day, nor reaches a slot
KILL_AT = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)  # Tuesday
STOP_AT = datetime(2026, 3, 4, 14, 0, tzinfo=UTC)  # Wednesday, 4.5 h after the last slot


def wait_until(fake: datetime, epoch: float) -> None:
    time.sleep(max(0.0, epoch + (fake - START).total_seconds() / SPEED - time.time()))


def leader_pid(database: Database) -> int | None:
    with database.session() as session:
        lease = session.scalars(select(LeaderLease).where(LeaderLease.name == "clock")).first()
        if lease is None or lease.expires_at < datetime.now(UTC):
            return None
        return int(lease.holder.split(":")[1])


def test_two_clock_processes_post_every_reminder_exactly_once_across_a_failover(
    database: Database, tmp_path: Path
) -> None:
    if database.engine.dialect.name != "postgresql":
        pytest.skip("the two-clock failover runs on PostgreSQL")
    add_team(database, "utc-team", reminder_days="daily")  # 09:30 UTC
    add_team(database, "tokyo", timezone="Asia/Tokyo", reminder_days="daily")  # 00:30 UTC
    add_key(database, "u", team="utc-team", created=START - timedelta(days=400))
    add_key(database, "t", team="tokyo", created=START - timedelta(days=400))
    epoch = time.time() + 1.0
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "KEYBOT_", "DATABASE_"))}
    env.update(
        DATABASE_URL=database.url, KEYBOT_FINGERPRINT_KEY=TEST_FINGERPRINT_KEY, KEYBOT_LOG_LEVEL="WARNING",
        KEYBOT_CLOCK_TICK_SECONDS="0.5", KEYBOT_STATE_DIR=str(tmp_path / "state"),
        TEST_FAKE_START=START.isoformat(), TEST_FAKE_EPOCH=str(epoch), TEST_FAKE_SPEED=str(SPEED),
        TEST_LEASE_SECONDS=str(LEASE_SECONDS),
    )  # fmt: skip
    clocks = {
        p.pid: p
        for p in (
            subprocess.Popen(
                [sys.executable, str(HOOK)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            for _ in range(2)
        )
    }
    try:
        wait_until(KILL_AT, epoch)
        killed = leader_pid(database)
        assert killed in clocks, "one of the two clocks leads"
        clocks[killed].send_signal(signal.SIGKILL)
        clocks[killed].wait(timeout=10)
        deadline = time.time() + LEASE_SECONDS + 3
        while (standby := leader_pid(database)) in (None, killed) and time.time() < deadline:
            time.sleep(0.1)
        assert standby in clocks and standby != killed, "the standby took over within the lease time"
        wait_until(STOP_AT, epoch)
    finally:
        for process in clocks.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in clocks.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
    with database.session() as session:
        keys = sorted(
            session.scalars(select(Notification.dedupe_key).where(Notification.kind == "rotation_reminder"))
        )
        claimed = session.scalar(
            select(func.count()).select_from(ReminderDay).where(ReminderDay.notification_id.is_not(None))
        )
    days = [date(2026, 3, 1) + timedelta(days=n) for n in range(4)]  # Sunday (late, at start) .. Wednesday
    assert keys == sorted(f"reminder:{team}:{d.isoformat()}" for team in ("tokyo", "utc-team") for d in days)
    assert claimed == len(keys), "each message is the one its day's claim points to"
