"""Rotation reminders at scale: 100,000 keys in 500 teams.

Figures: the due computation (one query, ≤ 1 s), the clock's reminder pass that enqueues every team's
message, and a check that the outbox rows (one Slack call each) equal the teams with something due.
Keys were last rotated up to a quarter of their period late (production 30 days, staging 60), so about
a third are due within the 7-day horizon; a tenth of the teams rotated everything yesterday.
"""

from __future__ import annotations

import os
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select

from bench.common import database_targets, figure
from bot.db.migrate import ensure_schema
from bot.db.session import Database
from bot.notifications.models import Notification
from bot.registry.models import Key, KeyOwner, OwnerRole, Team
from bot.reminders.due import due_keys
from bot.reminders.jobs import run_reminders
from bot.reminders.settings import ReminderSettings

KEYS = int(os.environ.get("BENCH_REMINDER_KEYS", "100000"))
TEAMS = int(os.environ.get("BENCH_REMINDER_TEAMS", "500"))
QUIET_TEAMS = TEAMS // 10  # every key rotated yesterday: nothing due, nothing sent
NOW = datetime(2026, 3, 4, 23, 0, tzinfo=UTC)  # a Wednesday, after every team's slot
ZONES = ("UTC", "Europe/Paris", "America/New_York", "Asia/Tokyo", "Australia/Sydney")
CHUNK = 10_000


def seed(database: Database) -> None:
    rng = random.Random(7)
    with database.engine.begin() as conn:
        conn.execute(
            insert(Team),
            [
                {"name": f"team-{t}", "slack_channel": f"C0TEAM{t:05d}", "manager_slack_id": "U0MANAGER1",
                 "timezone": ZONES[t % len(ZONES)]}
                for t in range(TEAMS)
            ],
        )  # fmt: skip
        team_ids = {name: id_ for id_, name in conn.execute(select(Team.id, Team.name))}
        for start in range(0, KEYS, CHUNK):
            rows: list[dict[str, Any]] = []
            for i in range(start, min(start + CHUNK, KEYS)):
                team = i % TEAMS
                environment = rng.choice(("production", "staging"))
                period = 30 if environment == "production" else 60
                age = 1 if team < QUIET_TEAMS else rng.randint(0, period * 5 // 4)
                rows.append(
                    {"name": f"key-{i:06d}", "provider": "openai", "environment": environment,
                     "created_at": NOW - timedelta(days=400), "last_rotated_at": NOW - timedelta(days=age),
                     "team_id": team_ids[f"team-{team}"], "status": "active", "tags": [], "drill": False}
                )  # fmt: skip
            conn.execute(insert(Key), rows)
        key_ids = [id_ for (id_,) in conn.execute(select(Key.id))]
        for start in range(0, len(key_ids), CHUNK):
            conn.execute(
                insert(KeyOwner),
                [
                    {"key_id": k, "slack_user_id": f"U0OWN{k % 997:04d}", "role": OwnerRole.OWNER}
                    for k in key_ids[start : start + CHUNK]
                ],
            )


def run() -> None:
    settings = ReminderSettings(timezone="UTC", fallback_channel="C0FALLBACK")
    for dialect, url in database_targets("reminders"):
        database = Database(url)
        ensure_schema(database.engine)
        seed(database)
        timings = []
        for _ in range(3):
            started = time.perf_counter()
            due = due_keys(database, NOW, horizon_days=settings.horizon_days, settings=settings)
            timings.append(time.perf_counter() - started)
        figure(f"reminders.due_{KEYS}_keys.{dialect}", min(timings), "s")
        figure(f"reminders.due_keys_found.{dialect}", len(due), "keys")
        started = time.perf_counter()
        enqueued = run_reminders(database, NOW, settings)
        figure(f"reminders.enqueue_pass_{TEAMS}_teams.{dialect}", time.perf_counter() - started, "s")
        teams_due = len({k.team for k in due})
        with database.session() as session:
            rows = session.scalar(select(func.count()).where(Notification.kind == "rotation_reminder")) or 0
        figure(f"reminders.teams_with_something_due.{dialect}", teams_due, "teams")
        figure(f"reminders.slack_calls.{dialect}", rows, "calls")
        assert rows == teams_due == len(enqueued), (rows, teams_due, len(enqueued))
        assert run_reminders(database, NOW + timedelta(minutes=1), settings) == [], (
            "a second pass sends nothing"
        )
        database.dispose()
