"""`keybot doctor` against the real local stand-ins: Slack API, OpenBao dev server, OpenAI Admin API."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import structlog
from typer.testing import CliRunner

from bot.cli import main
from bot.cli.context import runtime
from bot.cli.doctor import Check, check_signing_secret
from bot.config import Settings, get_settings
from tests.world import REPO, World, unique_name

if TYPE_CHECKING:
    from tests.standins.openbao import OpenBaoServer
    from tests.standins.slack_api import SlackStandin

POLICY = (REPO / "runbooks" / "vault-policy.hcl").read_text()
SIGNING_SECRET = "8f742231b10e8888abcd99a0b1c2d3e4"  # shaped like a Slack signing secret
Doctor = Callable[..., tuple[int, dict[str, Check], str]]


def token_with_policy(server: OpenBaoServer, policy_text: str) -> str:
    root = server.client()
    name = f"keybot-doctor-{uuid.uuid4().hex[:8]}"
    root.sys.create_or_update_policy(name=name, policy=policy_text)
    created = root.auth.token.create(policies=[name], no_default_policy=True, ttl="10m")
    return str(created["auth"]["client_token"])


@pytest.fixture
def doctor(world: World, slack_standin: SlackStandin, monkeypatch: pytest.MonkeyPatch) -> Iterator[Doctor]:
    """Runs `keybot doctor` in this process with everything configured, overridden per call."""
    logging_config, root = structlog.get_config(), logging.getLogger()
    handlers = root.handlers[:]
    good = {
        "DATABASE_URL": world.database.url,
        "SLACK_BOT_TOKEN": slack_standin.bot_token,
        "SLACK_API_URL": slack_standin.base_url,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "VAULT_ADDR": world.bao.addr,
        "VAULT_TOKEN": token_with_policy(world.bao, POLICY),
        "OPENAI_ADMIN_KEY": world.openai.admin_key,
        "OPENAI_ADMIN_BASE_URL": world.openai.base_url,
    }

    def run(**overrides: str | None) -> tuple[int, dict[str, Check], str]:
        for name, value in {**good, **overrides}.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        runtime.cache_clear()
        result = CliRunner().invoke(main.app, ["doctor"])
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        lines = {}
        for line in result.stdout.splitlines():
            state, rest = line.split(" ", 1)
            name, detail = rest.strip().split("  ", 1)
            lines[name] = Check(name, state, detail.strip())  # type: ignore[arg-type]
        for secret in {**good, **overrides}.values():
            if secret and len(secret) >= 20 and not secret.startswith(("http", "sqlite", "postgresql")):
                assert secret not in result.output
        return result.exit_code, lines, result.output

    yield run
    runtime.cache_clear()
    get_settings.cache_clear()
    structlog.configure(**logging_config)
    root.handlers[:] = handlers


def states(lines: dict[str, Check]) -> dict[str, str]:
    return {name: check.state for name, check in lines.items()}


def test_everything_configured_and_sufficient_is_ok(world: World, doctor: Doctor) -> None:
    world.add_key(unique_name("doctor"), "production")
    code, lines, output = doctor()
    assert code == 0, output
    assert set(states(lines).values()) == {"ok"}, output
    assert list(lines) == [
        "database", "slack bot token", "slack signing secret", "vault", "vault policy", "openai admin key"
    ]  # fmt: skip
    assert "1 registry path(s)" in lines["vault policy"].detail


def test_nothing_configured_but_the_database_is_skipped_with_the_variable_to_set(doctor: Doctor) -> None:
    unset = dict.fromkeys(["SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "VAULT_ADDR", "VAULT_TOKEN"])
    code, lines, output = doctor(**unset, OPENAI_ADMIN_KEY=None)
    assert code == 0, output
    assert states(lines) == {
        "database": "ok", "slack bot token": "skip", "slack signing secret": "skip", "vault": "skip",
        "openai admin key": "skip",
    }  # fmt: skip
    assert "SLACK_BOT_TOKEN" in lines["slack bot token"].detail and "VAULT_ADDR" in lines["vault"].detail
    assert "OPENAI_ADMIN_KEY" in lines["openai admin key"].detail


def test_a_wrong_slack_token_fails(doctor: Doctor) -> None:
    code, lines, output = doctor(SLACK_BOT_TOKEN="xoxb-1111-2222-wrongwrongwrongwrong")
    assert code == 1 and lines["slack bot token"].state == "fail", output
    assert "invalid_auth" in lines["slack bot token"].detail
    assert states(lines)["openai admin key"] == "ok"


def test_a_policy_too_narrow_fails_and_names_what_is_missing(world: World, doctor: Doctor) -> None:
    world.add_key(unique_name("doctor"), "staging")
    narrow = POLICY.replace('capabilities = ["create", "update", "read"]', 'capabilities = ["read"]')
    code, lines, output = doctor(VAULT_TOKEN=token_with_policy(world.bao, narrow))
    assert code == 1 and states(lines)["vault"] == "ok", output
    policy = lines["vault policy"]
    assert policy.state == "fail" and "lacks create, update" in policy.detail
    assert "vault-policy.hcl" in policy.detail


def test_a_token_that_may_not_check_itself_is_told_what_to_grant(world: World, doctor: Doctor) -> None:
    without = POLICY.split('path "sys/capabilities-self"')[0]
    code, lines, output = doctor(VAULT_TOKEN=token_with_policy(world.bao, without))
    assert code == 1 and "sys/capabilities-self" in lines["vault policy"].detail, output


def test_a_wrong_vault_token_fails(doctor: Doctor) -> None:
    code, lines, output = doctor(VAULT_TOKEN="s.notarealtokennotarealtoken")
    assert code == 1 and lines["vault"].state == "fail" and "vault policy" not in lines, output


def test_a_wrong_openai_admin_key_fails(doctor: Doctor) -> None:
    code, lines, output = doctor(OPENAI_ADMIN_KEY="sk-admin-wrongwrongwrongwrongwrong0123")
    assert code == 1 and lines["openai admin key"].state == "fail", output
    assert "OPENAI_ADMIN_KEY" in lines["openai admin key"].detail


def test_a_missing_or_unmigrated_database_fails_without_creating_one(doctor: Doctor, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.db"
    code, lines, output = doctor(DATABASE_URL=f"sqlite:///{missing}")
    assert code == 1 and "keybot db upgrade" in lines["database"].detail, output
    assert not missing.exists()
    empty = tmp_path / "empty.db"
    empty.touch()
    code, lines, output = doctor(DATABASE_URL=f"sqlite:///{empty}")
    assert code == 1 and "no schema" in lines["database"].detail, output


@pytest.mark.parametrize(
    ("secret", "state"),
    [(SIGNING_SECRET, "ok"), ("not-a-signing-secret", "fail"), (SIGNING_SECRET[:-1], "fail")],
)
def test_signing_secret_plausibility(secret: str, state: str) -> None:
    settings = Settings(slack_signing_secret=secret)
    check = check_signing_secret(settings)
    assert check.state == state and secret not in check.detail
