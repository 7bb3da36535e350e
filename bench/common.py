"""Helpers shared by benchmarks: percentiles, figure printing, database targets."""

from __future__ import annotations

import os
import statistics
import tempfile
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import create_engine, text

POSTGRES_ADMIN_URL = os.environ.get(
    "KEYBOT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def figure(name: str, value: float, unit: str) -> None:
    print(f"{name} {value:.3f} {unit}", flush=True)


def percentile(samples: list[float], p: float) -> float:
    """The p-th percentile; NaN for no samples (a step whose forms never arrived reports NaN, not a crash)."""
    if not samples:
        return float("nan")
    if len(samples) < 2:
        return samples[0]
    return statistics.quantiles(samples, n=1000, method="inclusive")[int(p * 10) - 1]


SELECTED = {d.strip() for d in os.environ.get("BENCH_DATABASES", "sqlite,postgresql").split(",")}
"""BENCH_DATABASES=postgresql (or sqlite) measures one database only."""


def database_targets(label: str) -> Iterator[tuple[str, str]]:
    """A fresh SQLite file, and a fresh PostgreSQL database when the server answers."""
    if "sqlite" in SELECTED:
        with tempfile.TemporaryDirectory() as tmp:
            yield "sqlite", f"sqlite:///{Path(tmp) / 'bench.db'}"
    if "postgresql" not in SELECTED:
        return
    name = f"keybot_bench_{label}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:
        print(f"# postgresql skipped: {str(error).splitlines()[0]}")
        return
    yield "postgresql", admin.url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
