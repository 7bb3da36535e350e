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

from bot.runbooks.models import RunStatus
from bot.runbooks.transition import Batch, Stamp

ENABLED = os.environ.get("KEYBOT_PG_SINGLE_STATEMENT", "1") != "0"
"""Measurement switch (bench): 0 writes PostgreSQL through the same Core statements as SQLite."""

EVENTS_FROM_JSON = """
    INSERT INTO timeline_events (incident_id, seq, at, actor, kind, run_id, step, data, prev_hash, hash)
    SELECT e.incident_id, e.seq, e.at, e.actor, e.kind, e.run_id, e.step, e.data, e.prev_hash, e.hash
    FROM json_to_recordset(CAST(%(events)s AS json)) AS e(
        incident_id integer, seq integer, at timestamptz, actor varchar, kind varchar, run_id varchar,
        step varchar, data json, prev_hash varchar, hash varchar
    )"""
"""Timeline rows (chain.chained_rows) from the JSON array parameter `events`, for a CTE of a statement."""

STATEMENT = """
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
    UPDATE run_steps SET
        status = s.status, attempts = s.attempts, started_at = s.started_at, finished_at = s.finished_at,
        last_error = s.last_error, skip_reason = s.skip_reason, approved_by = s.approved_by,
        done_by = s.done_by, output = s.output
    FROM json_to_recordset(CAST(%(steps)s AS json)) AS s(
        step_id integer, status varchar, attempts integer, started_at timestamptz, finished_at timestamptz,
        last_error text, skip_reason text, approved_by varchar, done_by varchar, output json
    )
    WHERE run_steps.id = s.step_id AND run_steps.run_id = %(run_id)s AND EXISTS (SELECT FROM run)
),
events AS (
    {events}
    WHERE EXISTS (SELECT FROM run)
),
outbox AS (
    INSERT INTO notifications (dedupe_key, incident_id, run_id, kind, recipient, subject, body, facts, status,
                               attempts, created_at, next_attempt_at)
    SELECT n.dedupe_key, n.incident_id, n.run_id, n.kind, n.recipient, n.subject, n.body, n.facts, n.status,
           n.attempts, n.created_at, n.next_attempt_at
    FROM json_to_recordset(CAST(%(notifications)s AS json)) AS n(
        dedupe_key varchar, incident_id integer, run_id varchar, kind varchar, recipient varchar,
        subject varchar, body text, facts json, status varchar, attempts integer, created_at timestamptz,
        next_attempt_at timestamptz
    )
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
        provider_key_id = k.provider_key_id, fingerprint = k.fingerprint, last_rotated_at = k.rotated_at,
        status = k.status, vault_path = k.vault_path,
        secret_family = coalesce(k.secret_family, keys.secret_family),
        secret_last4 = coalesce(k.secret_last4, keys.secret_last4)
    FROM json_to_recordset(CAST(%(key_rotated)s AS json)) AS k(
        provider_key_id varchar, fingerprint varchar, rotated_at timestamptz, vault_path varchar,
        secret_family varchar, secret_last4 varchar, status varchar
    )
    WHERE keys.id = %(key_id)s AND EXISTS (SELECT FROM run)
)
SELECT status FROM run
""".replace("{events}", EVENTS_FROM_JSON)


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
