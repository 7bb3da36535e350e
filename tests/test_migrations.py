from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from bot.db.migrate import SchemaOutOfDate, current_revision, ensure_schema, head_revision, upgrade
from bot.db.models import Base
from bot.db.session import Database, make_engine


def test_migrations_produce_exactly_the_models(database: Database) -> None:
    """A model change without a migration fails here, on both SQLite and PostgreSQL."""
    with database.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []


def test_empty_database_is_created_on_first_use(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/new.db")
    ensure_schema(engine)
    assert current_revision(engine) == head_revision(engine)
    ensure_schema(engine)


def test_outdated_database_is_not_silently_upgraded(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/old.db")
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0000'"))
    with pytest.raises(SchemaOutOfDate, match="keybot db upgrade"):
        ensure_schema(engine)


def test_sqlite_pragmas(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/p.db")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 10000
