"""`keybot reminders`: preview prints what Slack would post (same renderer), send is for admins only,
snooze and rotated are the reminder's buttons for break-glass; bad input is one line, exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from bot.cli.identity import cli_identity
from bot.db.base import utcnow
from bot.db.migrate import upgrade
from bot.db.session import Database
from bot.registry.models import KeyStatus
from tests.reminders_helpers import add_key, add_team, counts, key_row

KEYBOT = [sys.executable, "-c", "from bot.cli.main import main; main()"]


@pytest.fixture
def registry(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'cli.db'}")
    upgrade(database.engine)
    add_team(database, "payments", channel="C0PAYMENTS")
    add_key(database, "pay-prod", team="payments", rotated=utcnow() - timedelta(days=40))
    add_key(database, "pay-fine", team="payments", rotated=utcnow() - timedelta(days=1))
    add_key(database, "orphan", created=utcnow() - timedelta(days=90))
    add_key(database, "old", created=utcnow() - timedelta(days=900), status=KeyStatus.REVOKED)
    return database


def keybot(database: Database, *args: str, admin: bool = False) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "KEYBOT_", "DATABASE_"))}
    env.update(DATABASE_URL=database.url, KEYBOT_REMINDER_FALLBACK_CHANNEL="C0FALLBACK", COLUMNS="200")
    env["KEYBOT_STATE_DIR"] = str(Path(database.url.removeprefix("sqlite:///")).parent / "state")
    if admin:
        env["KEYBOT_ADMINS"] = cli_identity()
    return subprocess.run([*KEYBOT, "reminders", *args], capture_output=True, text=True, env=env, timeout=60)


def test_preview_prints_every_team_with_something_due_through_the_slack_renderer(registry: Database) -> None:
    shown = keybot(registry, "preview")
    assert shown.returncode == 0, shown.stderr
    assert "── to C0PAYMENTS ──" in shown.stdout and "── to C0FALLBACK ──" in shown.stdout
    assert "pay-prod" in shown.stdout and "orphan" in shown.stdout
    assert "pay-fine" not in shown.stdout
    listed = {k["name"] for r in json.loads(keybot(registry, "preview", "--json").stdout) for k in r["keys"]}
    assert listed == {"pay-prod", "orphan"}, "revoked and not-yet-due keys are not listed"
    assert "Rotate now" in shown.stdout and "Snooze" in shown.stdout
    (payments,) = json.loads(keybot(registry, "preview", "--team", "payments", "--json").stdout)
    assert [k["name"] for k in payments["keys"]] == ["pay-prod"] and payments["channel"] == "C0PAYMENTS"
    assert counts(registry) == {"key_snoozes": 0, "key_events": 0, "reminder_days": 0, "notifications": 0}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["preview", "--team", "nobody"], "keybot: unknown team 'nobody'\n"),
        (
            ["preview", "--date", "2026-02-30"],
            "keybot: --date expects a date like 2026-03-04 (got '2026-02-30')\n",
        ),
        (
            ["rotated", "pay-prod", "--on", "yesterday"],
            "keybot: --on expects a date like 2026-03-04 (got 'yesterday')\n",
        ),
        (
            ["snooze", "nope", "--days", "3", "--reason", "r"],
            "keybot: no key named 'nope' (give its name or #id)\n",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(registry: Database, args: list[str], message: str) -> None:
    result = keybot(registry, *args)
    assert (result.returncode, result.stderr) == (2, message)


def test_send_is_refused_for_a_non_admin_and_changes_nothing(registry: Database) -> None:
    before = counts(registry)
    refused = keybot(registry, "send", "--team", "payments")
    assert refused.returncode == 2 and refused.stderr.startswith("keybot: You may not send now"), (
        refused.stderr
    )
    assert "Nothing was changed." in refused.stderr and "Traceback" not in refused.stderr
    assert counts(registry) == before


def test_an_admin_sends_once_a_day(registry: Database) -> None:
    sent = keybot(registry, "send", "--team", "payments", admin=True)
    assert sent.returncode == 0, sent.stderr
    assert "Enqueued the rotation reminder of payments" in sent.stdout
    again = keybot(registry, "send", "--team", "payments", admin=True)
    assert again.returncode == 2 and "already sent" in again.stderr
    assert counts(registry)["notifications"] == 1


def test_snooze_and_rotated_from_the_terminal_are_permission_checked(registry: Database) -> None:
    before, row = counts(registry), key_row(registry, 1)
    refused = keybot(registry, "snooze", "pay-prod", "--days", "3", "--reason", "busy")
    assert refused.returncode == 2 and "may not snooze" in refused.stderr
    refused = keybot(registry, "rotated", "#1", "--on", str(utcnow().date()), "--note", "by hand")
    assert refused.returncode == 2 and "may not mark as rotated" in refused.stderr
    assert counts(registry) == before and key_row(registry, 1) == row
    snoozed = keybot(registry, "snooze", "pay-prod", "--days", "3", "--reason", "busy", admin=True)
    assert snoozed.returncode == 0 and "pay-prod snoozed until" in snoozed.stdout, snoozed.stderr
    rotated = keybot(registry, "rotated", "#1", "--on", str(utcnow().date()), "--note", "by hand", admin=True)
    assert rotated.returncode == 0 and "pay-prod marked rotated" in rotated.stdout, rotated.stderr
    assert counts(registry)["key_events"] == 2
