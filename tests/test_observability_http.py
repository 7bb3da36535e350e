"""/healthz, /readyz, request ids and the routing table, through keybot's real WSGI app in-process."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import event

from bot.config import Settings
from bot.db.session import Database
from bot.log import configure_logging
from bot.observability.readiness import Readiness, database_check, slack_check, vault_check
from tests.observability_helpers import CLOSED_PORT_URL, get, wsgi


def _settings(**env: str) -> Settings:
    return Settings(**env)  # type: ignore[arg-type]


def test_healthz_answers_without_touching_the_database() -> None:
    unreachable = Database(CLOSED_PORT_URL)
    attempts: list[object] = []
    event.listen(unreachable.engine, "do_connect", lambda *args: attempts.append(args))
    status, headers, body = get(wsgi(unreachable), "/healthz")
    assert (status, body) == ("200 OK", "ok") and headers["X-Request-Id"]
    assert attempts == []
    get(wsgi(unreachable), "/readyz")
    assert attempts, "the listener sees connection attempts (so its silence above means something)"


def test_readyz_names_every_dependency_and_skips_what_is_not_configured(database: Database) -> None:
    status, headers, body = get(wsgi(database, Settings()), "/readyz")
    answer = json.loads(body)
    assert status == "200 OK" and headers["Content-Type"].startswith("application/json")
    assert answer["ready"] is True
    assert answer["checks"]["database"]["status"] == "ok"
    assert "head" in answer["checks"]["database"]["reason"]
    assert answer["checks"]["vault"] == {"status": "skipped", "reason": "VAULT_ADDR is not set"}
    assert answer["checks"]["slack"] == {"status": "skipped", "reason": "SLACK_BOT_TOKEN is not set"}


def test_readyz_is_503_when_the_database_is_unreachable() -> None:
    status, _, body = get(wsgi(Database(CLOSED_PORT_URL), Settings()), "/readyz")
    answer = json.loads(body)
    assert status == "503 Service Unavailable" and answer["ready"] is False
    assert answer["checks"]["database"]["status"] == "fail"
    assert answer["checks"]["database"]["reason"].startswith("unreachable (")
    assert "postgres@" not in body


def test_readyz_fails_a_database_without_keybots_schema(tmp_path: Path) -> None:
    check = database_check(Database(f"sqlite:///{tmp_path / 'empty.db'}"))()
    assert check.status == "fail" and "keybot db upgrade" in check.reason


def test_readyz_checks_vault_and_a_bad_token_makes_it_503(database: Database, openbao) -> None:  # type: ignore[no-untyped-def]
    good = vault_check(_settings(vault_addr=openbao.addr, vault_token=SecretStr(openbao.token)))()
    assert good.status == "ok"
    canary = "hvs.not-a-real-token-0123456789"
    settings = _settings(vault_addr=openbao.addr, vault_token=SecretStr(canary))
    status, _, body = get(wsgi(database, settings), "/readyz")
    answer = json.loads(body)
    assert status == "503 Service Unavailable"
    assert answer["checks"]["vault"]["status"] == "fail" and answer["checks"]["database"]["status"] == "ok"
    assert canary not in body


def test_readyz_slack_auth_is_cached_for_a_minute(slack_standin) -> None:  # type: ignore[no-untyped-def]
    now = [100.0]
    settings = _settings(
        slack_bot_token=SecretStr(slack_standin.bot_token), slack_api_url=slack_standin.base_url
    )
    readiness = Readiness({"slack": (slack_check(settings), 60.0)}, clock=lambda: now[0])
    ready, checks = readiness.check()
    assert ready and checks["slack"]["status"] == "ok" and "T" in checks["slack"]["reason"]
    now[0] += 30
    assert readiness.check() == (ready, checks)
    assert len(slack_standin.calls_to("auth.test")) == 1
    slack_standin.inject("auth.test", "invalid_auth")
    now[0] += 31
    ready, checks = readiness.check()
    assert not ready and checks["slack"] == {"status": "fail", "reason": "auth.test failed: invalid_auth"}
    assert len(slack_standin.calls_to("auth.test")) == 2


def test_a_crashing_probe_is_a_named_failure_not_a_500(database: Database) -> None:
    def broken() -> object:
        raise RuntimeError("boom")

    readiness = Readiness({"database": (database_check(database), 0.0), "vault": (broken, 0.0)})  # type: ignore[dict-item]
    status, _, body = get(wsgi(database, readiness=readiness), "/readyz")
    assert status == "503 Service Unavailable"
    assert json.loads(body)["checks"]["vault"] == {"status": "fail", "reason": "check crashed (RuntimeError)"}


@pytest.mark.parametrize(
    ("offered", "kept"),
    [("lb-7f3a9c2e-0001", True), ("short", False), ("bad id\nwith=injection", False), ("x" * 500, False)],
)
def test_request_id_is_echoed_and_bound_to_the_requests_log_lines(offered: str, kept: bool) -> None:
    stream = io.StringIO()
    configure_logging("json", "INFO", stream)
    status, headers, _ = get(wsgi(Database(CLOSED_PORT_URL)), "/readyz", {"X-Request-Id": offered})
    rid = headers["X-Request-Id"]
    assert status.startswith("503") and (rid == offered) is kept and len(rid) <= 128 and "\n" not in rid
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert any(line["event"] == "not ready" and line["request_id"] == rid for line in lines)
    get(wsgi(Database(CLOSED_PORT_URL)), "/healthz")
    configure_logging("json", "INFO", stream)
    from bot.log import get_logger

    get_logger("t").info("after the request")
    assert "request_id" not in json.loads(stream.getvalue().splitlines()[-1])


def test_routes_unknown_paths_and_wrong_methods() -> None:
    app = wsgi(Database(CLOSED_PORT_URL))
    assert get(app, "/nope")[0] == "404 Not Found" and "X-Request-Id" in get(app, "/nope")[1]
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/healthz", "wsgi.input": io.BytesIO()}
    seen: list[str] = []
    app(environ, lambda status, headers, *_: seen.append(status))
    assert seen == ["405 Method Not Allowed"]
    assert {"/healthz", "/readyz", "/metrics", "/slack/events"} <= set(app.routes)
