"""Shared fixtures: databases on both SQLite and PostgreSQL, a fingerprinter, isolated settings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from bot.config import get_settings
from bot.db.session import Database
from bot.registry.fingerprint import Fingerprinter
from tests.dbs import empty_tables, migrated_database
from tests.standins.fixtures import *  # noqa: F403

TEST_FINGERPRINT_KEY = "test-fingerprint-key-0123456789abcdef0123456789abcdef"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Terminal presentation (tables, JSON, one-line refusals, canaries in output) does not depend on the
    database: a `cli_surface` test runs on SQLite only, which keeps the suite within its time budget."""
    kept, dropped = [], []
    for item in items:
        on_postgres = "[postgresql" in item.nodeid
        (dropped if on_postgres and item.get_closest_marker("cli_surface") else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def _migrated(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    yield from migrated_database(request.param, tmp_path_factory.mktemp("db"))


@pytest.fixture
def database(_migrated: Database) -> Iterator[Database]:
    """A migrated, empty database; every test using it runs once on SQLite and once on PostgreSQL."""
    empty_tables(_migrated)
    yield _migrated


@pytest.fixture
def session(database: Database) -> Iterator[Session]:
    with database.session() as session:
        yield session


@pytest.fixture
def fingerprinter() -> Fingerprinter:
    return Fingerprinter(TEST_FINGERPRINT_KEY.encode())


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test reads the developer's .env or environment, or writes state into the checkout."""
    for name in (
        "DATABASE_URL",
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "SLACK_APP_TOKEN",
        "SLACK_API_URL",
        "VAULT_ADDR",
        "VAULT_TOKEN",
        "OPENAI_ADMIN_KEY",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "KEYBOT_FINGERPRINT_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KEYBOT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def world(database: Database, openai_standin, openbao, fingerprinter: Fingerprinter, openbao_kv_prefix: str):  # type: ignore[no-untyped-def]
    """Registry + OpenAI stand-in + real OpenBao + engine factory, on this test's database."""
    from tests.world import World

    return World(database, openai_standin, openbao, fingerprinter, openbao_kv_prefix)
