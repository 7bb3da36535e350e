"""`keybot revoke`: a preflight before anything is opened, and `--sandbox` to try break-glass safely.

Real `keybot` processes (see tests/test_cli.py) on SQLite and PostgreSQL.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.db.session import Database
from bot.incidents.models import Incident
from bot.registry.models import Key, KeyStatus
from bot.runbooks.models import Run
from tests.standins.openai_api import OpenAIStandin
from tests.test_cli import EXAMPLE, REPO, keybot


def _counts(database: Database) -> tuple[int, int, KeyStatus | None]:
    with database.session() as session:
        runs = session.scalar(select(func.count(Run.id))) or 0
        incidents = session.scalar(select(func.count(Incident.id))) or 0
        status = session.scalar(select(Key.status).where(Key.name == "payments-openai-staging"))
    return runs, incidents, status


def test_revoke_without_vault_refuses_before_opening_anything(
    database: Database, openai_standin: OpenAIStandin, tmp_path: Path
) -> None:
    """Finding 7: without Vault, `keybot revoke` opened an incident and marked the key compromised, then
    failed."""
    assert keybot(database.url, "registry", "import", str(EXAMPLE), cwd=tmp_path).returncode == 0
    admin = {"OPENAI_ADMIN_KEY": openai_standin.admin_key, "OPENAI_ADMIN_BASE_URL": openai_standin.base_url}
    args = ("revoke", "payments-openai-staging", "--reason", "leaked in CI", "--yes")
    result = keybot(database.url, *args, cwd=tmp_path, extra_env=admin)
    assert result.returncode == 2, result.stdout + result.stderr
    problem = [line for line in result.stderr.splitlines() if line.startswith("keybot:")]
    assert len(problem) == 1 and "no Vault is configured" in problem[0] and "VAULT_ADDR" in problem[0]
    assert "nothing was started" in problem[0] and "OPENAI_ADMIN_KEY" not in problem[0]  # that one answers
    assert "Traceback" not in result.stderr
    assert _counts(database) == (0, 0, KeyStatus.ACTIVE)

    bare = keybot(database.url, *args, cwd=tmp_path)  # nothing configured: each missing piece is named
    assert bare.returncode == 2
    assert "OPENAI_ADMIN_KEY" in bare.stderr and "no Vault is configured" in bare.stderr
    assert _counts(database) == (0, 0, KeyStatus.ACTIVE)


@pytest.mark.cli_surface
def test_revoke_with_an_unreachable_vault_refuses_too(
    database: Database, openai_standin: OpenAIStandin, tmp_path: Path
) -> None:
    assert keybot(database.url, "registry", "import", str(EXAMPLE), cwd=tmp_path).returncode == 0
    env = {
        "OPENAI_ADMIN_KEY": openai_standin.admin_key,
        "OPENAI_ADMIN_BASE_URL": openai_standin.base_url,
        "VAULT_ADDR": "http://127.0.0.1:9",  # discard port: nothing answers
        "VAULT_TOKEN": "not-a-token",
    }
    result = keybot(database.url, "revoke", "#2", "--reason", "x", "--yes", cwd=tmp_path, extra_env=env)
    assert result.returncode == 2 and "Vault is not" in result.stderr, result.stderr
    assert _counts(database) == (0, 0, KeyStatus.ACTIVE)


def test_break_glass_on_the_sandbox_twice(tmp_path: Path) -> None:
    """Finding 7: there was no safe way to try the break-glass CLI. `--sandbox` uses the demo database
    and the sandbox; a second try finds the rotated key's twin again."""
    shutil.copytree(REPO / "runbooks", tmp_path / "runbooks")
    url = f"sqlite:///{tmp_path / 'keybot.db'}"
    args = ("revoke", "--sandbox", "payments-openai-staging", "--reason", "trying break-glass", "--yes")
    for _ in range(2):
        result = keybot(url, *args, cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "nothing real is touched" in result.stderr and "finished" in result.stdout
    database = Database(url)
    try:
        runs, incidents, status = _counts(database)
    finally:
        database.engine.dispose()
    assert (runs, incidents, status) == (2, 2, KeyStatus.ACTIVE)


def test_sandbox_refuses_a_database_that_is_not_the_demo(database: Database, tmp_path: Path) -> None:
    if database.engine.dialect.name == "sqlite":
        return  # the demo database is SQLite: only another kind is refused
    result = keybot(database.url, "revoke", "--sandbox", "x", "--reason", "r", "--yes", cwd=tmp_path)
    assert result.returncode == 2 and "--sandbox uses the local demo database" in result.stderr
