"""A run's transition on PostgreSQL as one statement: the run row, the steps that changed, the timeline
events and the other rows the step changed (outbox, incident, key lock, registry) travel together, so a
write is one round trip, atomic without BEGIN and COMMIT, instead of one round trip per table.

Row lists go as JSON arrays unpacked by `json_to_recordset`. The run row's UPDATE only matches while this
worker holds the lease, and every other part only runs when it matched, so a lost lease writes nothing.
The statement text never changes, so psycopg prepares it once per connection. SQLite has no
data-modifying CTEs; it writes the same rows with one Core statement per table (transition.py).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from bot.incidents.chain import EVENTS
from bot.notifications.service import NOTIFICATIONS, OUTBOX_COLUMNS
from bot.runbooks.models import RunStatus
from bot.runbooks.pg_columns import assignments, names, recordset
from bot.runbooks.transition import KEYS, STEP_FIELDS, STEPS, Batch, Stamp

ENABLED = os.environ.get("KEYBOT_PG_SINGLE_STATEMENT", "1") != "0"
"""Measurement switch (bench): 0 writes PostgreSQL through the same Core statements as SQLite."""

EVENT_COLUMNS = tuple(c.name for c in EVENTS.c if c.name != "id")
"""Every timeline column but the id: what `chain.chained_rows` produces for each event."""

EVENTS_FROM_JSON = f"""
    INSERT INTO timeline_events ({names(EVENT_COLUMNS)})
    SELECT {names(EVENT_COLUMNS, "e.")}
    FROM json_to_recordset(CAST(%(events)s AS json)) AS e({recordset(EVENTS, EVENT_COLUMNS)})"""  # noqa: S608
"""Timeline rows (chain.chained_rows) from the JSON array parameter `events`, for a CTE of a statement."""

ROTATED_COLUMNS = {
    "provider_key_id": "provider_key_id",
    "fingerprint": "fingerprint",
    "rotated_at": "last_rotated_at",
    "vault_path": "vault_path",
    "secret_family": "secret_family",
    "secret_last4": "secret_last4",
    "status": "status",
}
"""KeyRotated's fields and the registry columns they set."""

ROTATED_RECORDSET = recordset(KEYS, list(ROTATED_COLUMNS), ROTATED_COLUMNS)

STATEMENT = f"""
WITH run AS (
    UPDATE runs SET
        status = CASE WHEN runs.status = %(aborted)s THEN runs.status ELSE %(status)s END,
        attention = CASE WHEN runs.status = %(aborted)s THEN runs.attention ELSE %(attention)s END,
        finished_at = CASE WHEN runs.status = %(aborted)s THEN runs.finished_at ELSE %(finished_at)s END,
        context = CAST(%(context)s AS json),
        wake_at = CASE WHEN runs.status = %(aborted)s THEN NULL ELSE CAST(%(wake_at)s AS timestamptz) END,
        version = runs.version + CASE WHEN runs.status = %(aborted)s OR runs.status = %(status)s THEN 0
                                      ELSE 1 END,
        lease_owner = %(owner)s,
        lease_expires_at = %(expiry)s,
        updated_at = %(now)s
    WHERE runs.id = %(run_id)s AND runs.lease_owner = %(worker)s
    RETURNING runs.status
),
steps AS (
    UPDATE run_steps SET {assignments(STEP_FIELDS, "s")}
    FROM json_to_recordset(CAST(%(steps)s AS json)) AS s(step_id integer, {recordset(STEPS, STEP_FIELDS)})
    WHERE run_steps.id = s.step_id AND run_steps.run_id = %(run_id)s AND EXISTS (SELECT FROM run)
),
events AS (
    {EVENTS_FROM_JSON}
    WHERE EXISTS (SELECT FROM run)
),
outbox AS (
    INSERT INTO notifications ({names(OUTBOX_COLUMNS)})
    SELECT {names(OUTBOX_COLUMNS, "n.")}
    FROM json_to_recordset(CAST(%(notifications)s AS json)) AS n({recordset(NOTIFICATIONS, OUTBOX_COLUMNS)})
    WHERE EXISTS (SELECT FROM run)
    ON CONFLICT (dedupe_key) DO NOTHING
),
incident AS (
    UPDATE incidents SET
        status = CAST(%(incident_status)s AS varchar),
        contained_at = CASE WHEN %(contained)s THEN coalesce(incidents.contained_at, %(now)s)
                            ELSE incidents.contained_at END,
        resolved_at = CASE WHEN %(resolved)s THEN %(now)s ELSE incidents.resolved_at END
    WHERE incidents.id = %(incident_id)s AND CAST(%(incident_status)s AS varchar) IS NOT NULL
      AND EXISTS (SELECT FROM run)
),
unlocked AS (
    DELETE FROM key_locks
    WHERE key_locks.key_id = %(key_id)s AND key_locks.run_id = %(run_id)s AND %(release_lock)s
      AND EXISTS (SELECT FROM run)
),
rotated AS (
    UPDATE keys SET
        provider_key_id = coalesce(k.provider_key_id, keys.provider_key_id), fingerprint = k.fingerprint,
        last_rotated_at = k.rotated_at,
        status = k.status, vault_path = k.vault_path,
        secret_family = coalesce(k.secret_family, keys.secret_family),
        secret_last4 = coalesce(k.secret_last4, keys.secret_last4)
    FROM json_to_recordset(CAST(%(key_rotated)s AS json)) AS k({ROTATED_RECORDSET})
    WHERE keys.id = %(key_id)s AND EXISTS (SELECT FROM run)
)
SELECT status FROM run
"""  # noqa: S608 (names come from the models; every value is a bound parameter)


def _json_value(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(value: object) -> str:
    return json.dumps(value, default=_json_value, separators=(",", ":"))


def write(conn: Connection, batch: Batch, stamp: Stamp, events: list[dict[str, Any]]) -> RunStatus | None:
    """The stored status after the write (ABORTED if someone aborted the run); None, with nothing
    written, if the lease is lost.

    Raises IntegrityError when an event's (incident_id, seq) is taken: the caller's chain head is stale.
    """
    run, incident, rotated = batch.run, batch.incident, batch.key_rotated
    params = {
        "aborted": RunStatus.ABORTED.value,
        "status": RunStatus(run["status"]).value,
        "attention": run["attention"],
        "finished_at": run["finished_at"],
        "context": dumps(run["context"]),
        "wake_at": run.get("wake_at"),
        "owner": stamp.owner,
        "expiry": stamp.expiry,
        "now": stamp.now,
        "run_id": stamp.run_id,
        "worker": stamp.worker,
        "steps": dumps(batch.steps),
        "events": dumps(events),
        "notifications": dumps(batch.notifications),
        "incident_id": stamp.incident_id,
        "incident_status": incident.status.value if incident else None,
        "contained": bool(incident and incident.contained),
        "resolved": bool(incident and incident.resolved),
        "key_id": stamp.key_id,
        "release_lock": batch.release_lock,
        "key_rotated": dumps([{**asdict(rotated), "status": rotated.status.value}] if rotated else []),
    }
    stored = conn.exec_driver_sql(STATEMENT, params).scalar()
    return None if stored is None else RunStatus(stored)
