"""Test databases: a SQLite file or a per-worker PostgreSQL database, migrated once, emptied per test."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import OperationalError

from bot.db.migrate import upgrade
from bot.db.models import Base
from bot.db.session import Database

POSTGRES_ADMIN_URL = os.environ.get(
    "KEYBOT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_POSTGRES = os.environ.get("KEYBOT_REQUIRE_POSTGRES") == "1"


def _worker() -> str:
    """Unique per pytest invocation and worker, so concurrent test runs never drop each other's databases."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID", f"p{os.getpid()}")[:10]
    return f"{run}_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"


def postgres_url_for(name: str) -> str | None:
    """Create (or recreate) database `name`; None when PostgreSQL is unreachable and not required."""
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:
        if REQUIRE_POSTGRES:
            raise RuntimeError(
                f"PostgreSQL is required (KEYBOT_REQUIRE_POSTGRES=1) but failed: {error}"
            ) from error
        return None
    finally:
        admin.dispose()
    return make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def empty_tables(database: Database) -> None:
    """Empty every table. On PostgreSQL a process the previous test started may still be closing its
    connection: TRUNCATE can then lose a deadlock against it, so it waits a moment and tries again."""
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    for attempt in range(5):
        try:
            with database.engine.begin() as conn:
                if database.engine.dialect.name == "postgresql":  # table names come from our own metadata
                    conn.execute(
                        text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")
                    )
                else:
                    for table in tables:
                        conn.execute(text(f'DELETE FROM "{table}"'))
            return
        except OperationalError:
            if attempt == 4:
                raise
            time.sleep(0.5 * (attempt + 1))


def migrated_database(kind: str, tmp_root: Path) -> Iterator[Database]:
    if kind == "sqlite":
        url = f"sqlite:///{tmp_root / f'keybot-{_worker()}.db'}"
    else:
        pg_url = postgres_url_for(f"keybot_test_{_worker()}")
        if pg_url is None:
            pytest.skip("PostgreSQL not reachable at 127.0.0.1:5432 (CI makes this mandatory)")
        url = pg_url
    database = Database(url)
    upgrade(database.engine)
    yield database
    database.dispose()
    if kind == "postgresql":
        drop_postgres_database(make_url(url).database or "")


def drop_postgres_database(name: str) -> None:
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
