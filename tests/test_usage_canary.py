"""Canary secrets planted in every field of usage that reaches keybot (each ingest line's key, model,
source address, status code, field names and timestamp; the request's credentials) come out nowhere:
not in the endpoint's answers, the database, the logs, the alert pages rendered for Slack, nor the
chart PNG — while the good lines beside them are recorded and still page the owner."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from typing import Any

import pytest
from slack_bolt import App

from bot.alerts import service
from bot.alerts.chart import render_png
from bot.alerts.detect import run_detection
from bot.db.session import Database
from bot.log import configure_logging
from bot.notifications.models import Notification
from bot.slack.blocks.messages import notification_blocks
from bot.slack.serve import KeybotWSGI
from tests.alerts_helpers import add_key, add_team, settings
from tests.fakes import canary_key
from tests.test_trust_flow import dump
from tests.test_usage_ingest import call
from tests.usage_helpers import NOW

TOKEN = "ingest-token-for-canary-tests"


def canary_lines(canary: str) -> list[str]:
    ts = (NOW - timedelta(minutes=1)).isoformat()
    base: dict[str, Any] = {"key": "pay-prod", "ts": ts, "requests": 1}
    return [
        json.dumps({**base, "key": canary}),
        json.dumps({**base, "model": canary}),
        json.dumps({**base, "model": f"gpt-4o {canary}"}),
        json.dumps({**base, "source_ip": canary}),
        json.dumps({**base, "status": {canary: 1}}),
        json.dumps({**base, canary: 1}),
        json.dumps({**base, "ts": canary}),
        json.dumps({**base, "requests": canary}),
        '{"key": "pay-prod", "ts": "' + canary,  # a broken line around a secret
        canary,
    ]


def test_canaries_in_every_usage_field_never_come_out(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    canary = canary_key()
    fragments = (canary, canary[8:40], canary[-40:])
    monkeypatch.setenv("KEYBOT_INGEST_TOKEN", TOKEN)
    monkeypatch.setattr("bot.db.base.utcnow", lambda: NOW)
    logs = io.StringIO()
    configure_logging("json", "DEBUG", logs)
    add_team(database)
    add_key(database)
    wsgi = KeybotWSGI(
        App(token="xoxb-test", signing_secret="s" * 32, token_verification_enabled=False), database
    )
    history = [
        json.dumps({"key": "pay-prod", "ts": (NOW - timedelta(minutes=m)).isoformat(), "requests": 30})
        for m in range(180, 3, -1)
    ]
    spike = [
        json.dumps({"key": "pay-prod", "ts": (NOW - timedelta(minutes=m)).isoformat(), "requests": 900})
        for m in (3, 2)
    ]
    answers = []
    status, body = call(
        wsgi,
        "\n".join([*history, *spike, *canary_lines(canary)]).encode(),
        {"Authorization": f"Bearer {TOKEN}"},
    )
    answers.append(body)
    assert status == 200 and body["accepted"] == len(history) + len(spike) and body["rejected"] == 10
    for credentials in (
        {"Authorization": f"Bearer {canary}"},
        {"X-Keybot-Signature": canary, "X-Keybot-Timestamp": canary},
    ):
        status, body = call(wsgi, canary.encode(), credentials)
        answers.append(body)
        assert status == 401
    found = run_detection(database, NOW + timedelta(minutes=1), settings())
    (alert_id,) = found.opened
    with database.session() as session:
        pages = [notification_blocks(n) for n in session.query(Notification).all()]
        chart = render_png(service.chart_points(session, alert_id))
    assert pages and chart.startswith(b"\x89PNG")
    exits = {
        "answers": json.dumps(answers),
        "database": dump(database),
        "logs": logs.getvalue(),
        "pages": json.dumps(pages, default=str),
        "chart": chart.decode("latin-1"),
    }
    leaks = [(where, f[:12]) for where, text in exits.items() for f in fragments if f in text]
    assert not leaks
