"""A run's transition on PostgreSQL as one statement: the run row, the steps that changed and the timeline
events travel together, so a write costs one round trip instead of one per table.

The steps and events go as JSON arrays unpacked by `json_to_recordset`; the run row's UPDATE only matches
while this worker holds the lease, and the step and event parts only run when it matched, so a lost lease
writes nothing. The statement text never changes, so psycopg prepares it once per connection.
SQLite has no data-modifying CTEs; it writes the same rows with one Core statement per table (writer.py).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from bot.runbooks.models import RunStatus

STATEMENT = """
WITH run AS (
    UPDATE runs SET
        status = CASE WHEN runs.status = %(aborted)s THEN runs.status ELSE %(status)s END,
        attention = CASE WHEN runs.status = %(aborted)s THEN runs.attention ELSE %(attention)s END,
        finished_at = CASE WHEN runs.status = %(aborted)s THEN runs.finished_at ELSE %(finished_at)s END,
        context = CAST(%(context)s AS json),
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
    INSERT INTO timeline_events (incident_id, seq, at, actor, kind, run_id, step, data, prev_hash, hash)
    SELECT e.incident_id, e.seq, e.at, e.actor, e.kind, e.run_id, e.step, e.data, e.prev_hash, e.hash
    FROM json_to_recordset(CAST(%(events)s AS json)) AS e(
        incident_id integer, seq integer, at timestamptz, actor varchar, kind varchar, run_id varchar,
        step varchar, data json, prev_hash varchar, hash varchar
    )
    WHERE EXISTS (SELECT FROM run)
)
SELECT status FROM run
"""


def _json_value(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _dumps(value: object) -> str:
    return json.dumps(value, default=_json_value, separators=(",", ":"))


def write(
    conn: Connection,
    *,
    run_id: str,
    worker: str,
    run: dict[str, Any],
    owner: str | None,
    expiry: datetime | None,
    now: datetime,
    steps: list[dict[str, Any]],
    events: list[dict[str, Any]],
) -> RunStatus | None:
    """The stored status after the write (ABORTED if someone aborted the run), None if the lease is lost.

    Raises IntegrityError when an event's (incident_id, seq) is taken: the caller's chain head is stale.
    """
    status = run["status"]
    params = {
        "aborted": RunStatus.ABORTED.value,
        "status": status.value if isinstance(status, RunStatus) else status,
        "attention": run["attention"],
        "finished_at": run["finished_at"],
        "context": _dumps(run["context"]),
        "owner": owner,
        "expiry": expiry,
        "now": now,
        "run_id": run_id,
        "worker": worker,
        "steps": _dumps(steps),
        "events": _dumps(events),
    }
    stored = conn.exec_driver_sql(STATEMENT, params).scalar()
    return None if stored is None else RunStatus(stored)
