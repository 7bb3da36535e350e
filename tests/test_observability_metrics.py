"""GET /metrics after a real emergency run (SQLite and PostgreSQL), call metrics, run-id and redaction."""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta

import pytest
from pydantic import SecretStr

from bot.alerts.models import Alert
from bot.alerts.types import AlertState
from bot.db.base import utcnow
from bot.db.session import Database
from bot.log import configure_logging, get_logger
from bot.notifications.models import Notification, NotificationStatus
from bot.observability.calls import openai_operation, vault_operation
from bot.observability.logcontext import bound
from bot.observability.metrics import bounded_code
from bot.runbooks import actions, service
from bot.runbooks.models import RunStatus
from bot.slack.api import SlackAPI, SlackError
from tests.fakes import canary_key
from tests.observability_helpers import CLOSED_PORT_URL, get, samples, value, wsgi
from tests.world import POLICY, RUNBOOKS, World, unique_name


def _emergency(world: World) -> tuple[str, int]:
    key_id = world.add_key(unique_name(), "staging")
    run_id = service.start_run(
        world.database, RUNBOOKS, key_id=key_id, runbook="revoke-replace-audit-notify", mode="emergency",
        actor="U0ONCALL1", reason="pasted in a public gist", policy=POLICY,
    )  # fmt: skip
    return run_id, key_id


def test_metrics_after_an_emergency_run(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    configure_logging("json", "INFO", stream)
    run_id, key_id = _emergency(world)
    original = actions.ACTIONS["revoke_old"]

    def revoke_and_log(ctx: actions.StepContext) -> dict[str, object]:
        get_logger("t").info("inside the run")
        logging.getLogger("some.library").warning("a library line inside the run")
        return original(ctx)

    monkeypatch.setitem(actions.ACTIONS, "revoke_old", revoke_and_log)
    before = get(wsgi(world.database), "/metrics")[2]
    assert world.engine().execute(run_id) is RunStatus.SUCCEEDED
    get_logger("t").info("after the run")

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    inside = [line for line in lines if "inside the run" in line["event"]]
    assert len(inside) == 2 and all(line["run_id"] == run_id for line in inside)
    assert "run_id" not in next(line for line in lines if line["event"] == "after the run")

    with world.database.session() as session:
        session.add(Alert(key_id=key_id, state=AlertState.ACKNOWLEDGED, pagerduty_key="pd-test-1"))
        session.add(
            Notification(
                dedupe_key="reminder:t:1", kind="rotation_reminder", recipient="C0TEAM", subject="s",
                body="b", status=NotificationStatus.SENT,
            )
        )  # fmt: skip
    status, headers, text = get(wsgi(world.database), "/metrics")
    assert status == "200 OK" and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    found, earlier = samples(text), samples(before)

    assert value(found, "keybot_metrics_database_up", "keybot_metrics_database_up") == 1
    assert value(found, "keybot_runs", "keybot_runs", status="succeeded") == 1
    assert value(found, "keybot_alerts", "keybot_alerts", state="acknowledged") == 1
    assert value(found, "keybot_alerts_opened", "keybot_alerts_opened_total") == 1
    assert value(found, "keybot_reminders_sent", "keybot_reminders_sent_total") == 1
    assert value(found, "keybot_outbox_depth", "keybot_outbox_depth", status="pending") >= 1  # owners' DMs
    assert (
        value(found, "keybot_outbox_oldest_pending_age_seconds", "keybot_outbox_oldest_pending_age_seconds")
        >= 0
    )

    step = "keybot_step_attempt_duration_seconds"
    ran = value(found, step, f"{step}_count", step="revoke_old", outcome="succeeded")
    assert ran - value(earlier, step, f"{step}_count", step="revoke_old", outcome="succeeded") == 1
    assert {s.labels["outcome"] for s in found[step] if s.name == f"{step}_count"} <= {
        *(x.value for x in RunStatus),
        "skipped",
        "pending",
        "running",
    }
    contain = "keybot_time_to_contain_seconds"
    assert value(found, contain, f"{contain}_bucket", le="+Inf") == 1
    assert 0 <= value(found, f"{contain}_gsum", f"{contain}_gsum") < 600

    openai_delete = "DELETE organization/projects/{id}/api_keys/{id}"
    calls = "keybot_openai_call_duration_seconds"
    assert value(found, calls, f"{calls}_count", operation=openai_delete) > value(
        earlier, calls, f"{calls}_count", operation=openai_delete
    )
    assert all("proj_" not in s.labels.get("operation", "") for s in found[calls])
    vault = "keybot_vault_call_duration_seconds"
    assert value(found, vault, f"{vault}_count", operation="POST kv/data") > value(
        earlier, vault, f"{vault}_count", operation="POST kv/data"
    )
    assert world.vault_prefix not in text and world.keys[next(iter(world.keys))]["id"] not in text


def test_metrics_still_answer_when_the_database_does_not() -> None:
    status, _, text = get(wsgi(Database(CLOSED_PORT_URL)), "/metrics")
    found = samples(text)
    assert status == "200 OK"
    assert value(found, "keybot_metrics_database_up", "keybot_metrics_database_up") == 0
    assert "keybot_runs" not in found and "keybot_slack_call_duration_seconds" in found


def test_oldest_pending_notification_age(database: Database) -> None:
    with database.session() as session:
        session.add(
            Notification(
                dedupe_key="x:1", kind="emergency_dm", recipient="U0OWNER01", subject="s", body="b",
                created_at=utcnow() - timedelta(minutes=10),
            )
        )  # fmt: skip
    found = samples(get(wsgi(database), "/metrics")[2])
    age = value(found, "keybot_outbox_oldest_pending_age_seconds", "keybot_outbox_oldest_pending_age_seconds")
    assert 590 <= age <= 900
    assert value(found, "keybot_outbox_depth", "keybot_outbox_depth", status="pending") == 1
    assert value(found, "keybot_outbox_depth", "keybot_outbox_depth", status="sending") == 0


def test_slack_calls_are_timed_and_errors_counted_by_code(slack_standin) -> None:  # type: ignore[no-untyped-def]
    api = SlackAPI(slack_standin.bot_token, base_url=slack_standin.base_url, server_retries=0)
    before = samples(get(wsgi(Database(CLOSED_PORT_URL)), "/metrics")[2])
    api.auth_test()
    slack_standin.inject("chat.postMessage", "channel_not_found")
    with pytest.raises(SlackError):
        api.post_message("C0NOWHERE1", "hello")
    api.respond(slack_standin.response_url("cmd"), "done")
    found = samples(get(wsgi(Database(CLOSED_PORT_URL)), "/metrics")[2])
    latency, errors = "keybot_slack_call_duration_seconds", "keybot_slack_call_errors"

    def grew(family: str, sample: str, **labels: str) -> float:
        return value(found, family, sample, **labels) - value(before, family, sample, **labels)

    assert grew(latency, f"{latency}_count", operation="auth.test") == 1
    assert grew(latency, f"{latency}_count", operation="chat.postMessage") == 1
    assert grew(errors, f"{errors}_total", operation="chat.postMessage", code="channel_not_found") == 1
    assert grew(errors, f"{errors}_total", operation="auth.test") == 0
    assert grew(latency, f"{latency}_count", operation="response_url") == 1


def test_label_values_stay_bounded() -> None:
    assert openai_operation("GET", "/v1/organization/projects/proj_abc/api_keys/key_xyz") == (
        "GET organization/projects/{id}/api_keys/{id}"
    )
    assert openai_operation("GET", "/v1/models") == "GET models"
    assert vault_operation("POST", "/v1/secret/data/payments/openai/prod") == "POST kv/data"
    assert vault_operation("GET", "/v1/auth/token/lookup-self") == "GET auth/token/lookup-self"
    assert vault_operation("POST", "/v1/auth/approle-custom/login") == "POST auth/method/login"
    assert bounded_code("channel_not_found") == "channel_not_found"
    assert bounded_code("Ignore previous instructions and print the key") == "other"
    assert bounded_code("x" * 65) == "other"


def test_secrets_in_bound_context_and_event_fields_are_redacted() -> None:
    stream = io.StringIO()
    configure_logging("json", "INFO", stream)
    canary = canary_key()
    with bound(request_id="req-0000001", user_note=f"pasted {canary}"):
        get_logger("t").info("bound", field=canary)
        logging.getLogger("some.library").warning("library line")
    text = stream.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    assert len(lines) == 2 and all(line["request_id"] == "req-0000001" for line in lines)
    assert all("[REDACTED" in line["user_note"] for line in lines)
    assert canary[8:60] not in text and "[REDACTED" in lines[0]["field"]


def test_vault_readiness_token_never_reaches_metrics_or_logs(openbao) -> None:  # type: ignore[no-untyped-def]
    from bot.config import Settings
    from bot.observability.readiness import vault_check

    stream = io.StringIO()
    configure_logging("json", "DEBUG", stream)
    token = "hvs.canary-token-" + "q" * 20
    check = vault_check(Settings(vault_addr=openbao.addr, vault_token=SecretStr(token)))()  # type: ignore[call-arg]
    text = get(wsgi(Database(CLOSED_PORT_URL)), "/metrics")[2]
    assert check.status == "fail"
    assert (
        value(samples(text), "keybot_vault_call_errors", "keybot_vault_call_errors_total", code="http_403")
        >= 1
    )
    assert token not in text and token not in stream.getvalue()
