"""PostgreSQL writes a transition (and opens a run) with single statements; SQLite with one Core statement
per table. The statements' column lists come from the models; here both paths must write the same rows."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.db.base import utcnow
from bot.incidents import chain
from bot.incidents.chain import EVENTS, GENESIS, Head, PendingEvent, chained_rows
from bot.incidents.models import Incident
from bot.notifications.service import NOTIFICATIONS, OUTBOX_COLUMNS, Message, outbox_rows
from bot.runbooks import pg_transition
from bot.runbooks.transition import KEYS, RUNS, STEP_FIELDS, STEPS, KeyRotated, Stamp, write_core
from tests.test_engine_concurrency import claimed_writer, full_batch, start
from tests.world import World, unique_name


def test_the_column_lists_are_the_models() -> None:
    rows, _ = chained_rows(1, Head(0, GENESIS), [PendingEvent.now("k", "U0A")])
    assert tuple(rows[0]) == pg_transition.EVENT_COLUMNS == tuple(c.name for c in EVENTS.c if c.name != "id")
    row = outbox_rows([Message("owner_dm", "U0A", "s", "b")], dedupe_prefix="p", incident_id=1, run_id="r")[0]
    assert tuple(row) == OUTBOX_COLUMNS
    required = {c.name for c in NOTIFICATIONS.c if not c.nullable and c.default is None and not c.primary_key}
    assert required <= set(OUTBOX_COLUMNS)
    assert set(STEP_FIELDS) <= set(STEPS.c.keys())
    assert list(pg_transition.ROTATED_COLUMNS) == [f.name for f in dataclasses.fields(KeyRotated)]
    assert set(pg_transition.ROTATED_COLUMNS.values()) <= set(KEYS.c.keys())


def snapshot(world: World, run_id: str, key_id: int, incident_id: int | None) -> dict[str, Any]:
    """The rows a transition writes, without ids, times and hashes that differ between two runs."""
    skip = {
        "id", "run_id", "key_id", "incident_id", "lease_owner", "lease_expires_at", "updated_at",
        "created_at", "started_at", "finished_at", "at", "hash", "prev_hash", "dedupe_key", "next_attempt_at",
        "opened_at", "contained_at", "resolved_at", "title", "last_rotated_at", "name", "position",
        "fingerprint", "provider_key_id", "vault_path", "secret_family", "secret_last4", "project", "team_id",
    }  # fmt: skip
    with world.database.engine.connect() as conn:

        def rows(table: Any, where: Any) -> list[dict[str, Any]]:
            return [
                {k: v for k, v in r._mapping.items() if k not in skip}
                for r in conn.execute(select(table).where(where))
            ]

        incidents = Incident.__table__
        return {
            "run": rows(RUNS, RUNS.c.id == run_id),
            "steps": rows(STEPS, STEPS.c.run_id == run_id),
            "events": rows(EVENTS, EVENTS.c.run_id == run_id),
            "outbox": rows(NOTIFICATIONS, NOTIFICATIONS.c.run_id == run_id),
            "incident": rows(incidents, incidents.c.id == incident_id),  # type: ignore[attr-defined]
            "key": rows(KEYS, KEYS.c.id == key_id),
        }


def test_both_paths_write_the_same_rows(world: World) -> None:
    if world.database.engine.dialect.name != "postgresql":
        pytest.skip("the single statements are PostgreSQL's")
    written = []
    wake = utcnow() + timedelta(minutes=5)
    for path in ("single statement", "core"):
        key_id = world.add_key(unique_name("parity"), "staging")
        run_id = start(world, key_id)
        writer, state = claimed_writer(world, run_id)
        writer.close()
        batch = full_batch(state)
        rotated = dataclasses.replace(batch.key_rotated, fingerprint=path[0] * 64)  # fingerprints are unique
        batch = dataclasses.replace(batch, run={**batch.run, "wake_at": wake}, key_rotated=rotated)
        now = utcnow()
        stamp = Stamp(run_id, key_id, state.incident_id, "test:1:writer", None, None, now)
        with world.database.engine.connect() as conn:
            if path == "single statement":
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            if path == "core":
                with conn.begin():
                    events, _ = chained_rows(
                        state.incident_id, chain.head(conn, state.incident_id), batch.events
                    )
                    stored = write_core(conn, batch, stamp, events)
            else:
                events, _ = chained_rows(state.incident_id, chain.head(conn, state.incident_id), batch.events)
                stored = pg_transition.write(conn, batch, stamp, events)
        assert stored is not None
        written.append(snapshot(world, run_id, key_id, state.incident_id))
    for part in written[0]:
        assert written[0][part] == written[1][part], part
    assert written[0]["run"][0]["version"] == 0 and written[0]["outbox"] and written[0]["events"]
