"""Opening a run on PostgreSQL in two round trips instead of a dozen: one query reads the key (and takes
the incident's id from its sequence), one statement writes everything else.

Every part of the statement runs only if the key's lock was free: the lock row's insert does nothing on
a conflict, and then nothing else is written. The caller then takes the careful path (opening.py), which
looks at the holder, clears a finished run's stale lock, or refuses with who holds the key. Statement
texts never change, so psycopg prepares them once per connection.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, select

from bot.incidents import chain
from bot.incidents.chain import GENESIS, Head
from bot.incidents.models import DRILL_NUMBERS, IncidentStatus
from bot.runbooks.context import KEY_FACTS, KeyFacts
from bot.runbooks.models import RunStatus, StepStatus
from bot.runbooks.opening import STEPS, OpenedRun, RunPlan
from bot.runbooks.pg_columns import recordset
from bot.runbooks.pg_transition import EVENTS_FROM_JSON, dumps
from bot.runbooks.refusals import RunRefused

NEXT_INCIDENT_ID = select(func.nextval(func.pg_get_serial_sequence("incidents", "id"))).scalar_subquery()
"""Uncorrelated, so PostgreSQL evaluates it once per query (an InitPlan), whatever the number of rows."""
KEY_FACTS_AND_INCIDENT_ID = KEY_FACTS.add_columns(NEXT_INCIDENT_ID.label("next_incident_id"))
NEXT_DRILL_ID = select(-func.nextval(DRILL_NUMBERS)).scalar_subquery()
"""A drill's incident counts down from -1 on its own sequence (DRILL-n), never taking a real number."""
KEY_FACTS_AND_DRILL_ID = KEY_FACTS.add_columns(NEXT_DRILL_ID.label("next_incident_id"))

OPENED_STEPS = recordset(STEPS, ("position", "name", "action", "title"))
"""The step columns an opening writes from its plan (the rest are the step's initial state)."""

STATEMENT = """
WITH lock AS (
    INSERT INTO key_locks (key_id, run_id, holder, acquired_at)
    VALUES (%(key_id)s, %(run_id)s, %(actor)s, %(now)s)
    ON CONFLICT (key_id) DO NOTHING
    RETURNING key_id
),
incident AS (
    INSERT INTO incidents (id, key_id, title, severity, status, opened_by, reason, drill, opened_at)
    SELECT %(incident_id)s, %(key_id)s, %(title)s, %(severity)s, %(open)s, %(actor)s, %(reason)s, %(drill)s,
           %(now)s
    WHERE CAST(%(incident_id)s AS integer) IS NOT NULL AND EXISTS (SELECT FROM lock)
),
run AS (
    INSERT INTO runs (id, runbook, mode, key_id, incident_id, status, initiated_by, reason, drill, context,
                      plan, lease_owner, lease_expires_at, created_at, updated_at, slack_team_id,
                      slack_enterprise_id)
    SELECT %(run_id)s, %(runbook)s, %(mode)s, %(key_id)s, %(incident_id)s, %(running)s, %(actor)s,
           %(reason)s, %(drill)s, CAST(%(context)s AS json), CAST(%(plan)s AS json), %(lease_owner)s,
           %(lease_expires_at)s, %(now)s, %(now)s, %(slack_team_id)s, %(slack_enterprise_id)s
    WHERE EXISTS (SELECT FROM lock)
),
steps AS (
    INSERT INTO run_steps (run_id, position, name, action, title, status, attempts, output)
    SELECT %(run_id)s, s.position, s.name, s.action, s.title, %(pending)s, 0, CAST('{}' AS json)
    FROM json_to_recordset(CAST(%(steps)s AS json)) AS s({OPENED_STEPS})
    WHERE EXISTS (SELECT FROM lock)
    RETURNING id, position
),
marked AS (
    UPDATE keys SET status = %(key_status)s WHERE keys.id = %(key_id)s AND EXISTS (SELECT FROM lock)
),
events AS (
    {events}
    WHERE EXISTS (SELECT FROM lock)
)
SELECT id FROM steps ORDER BY position
""".replace("{events}", EVENTS_FROM_JSON).replace("{OPENED_STEPS}", OPENED_STEPS)


def open_on_postgresql(engine: Engine, plan: RunPlan) -> OpenedRun | None:
    """The opened run, or None when the key's lock was taken (nothing was written; an incident id from
    the sequence may be spent). Raises RunRefused for an unknown key."""
    query = KEY_FACTS
    if plan.incident:
        query = KEY_FACTS_AND_DRILL_ID if plan.drill else KEY_FACTS_AND_INCIDENT_ID
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        rows = conn.execute(query, {"key_id": plan.key_id}).all()
        key = KeyFacts.from_rows(rows)
        if key is None:
            raise RunRefused(f"no key #{plan.key_id} in the registry")
        plan.check(key)
        incident_id: int | None = rows[0].next_incident_id if plan.incident else None
        events: list[dict[str, Any]] = []
        head = Head(0, GENESIS)
        if incident_id is not None:
            events, head = chain.chained_rows(incident_id, head, plan.events(key))
        params = {
            "key_id": plan.key_id,
            "run_id": plan.run_id,
            "actor": plan.actor,
            "now": plan.now,
            "incident_id": incident_id,
            "title": plan.title(key),
            "severity": plan.severity,
            "open": IncidentStatus.OPEN.value,
            "reason": plan.reason,
            "drill": plan.drill,
            "runbook": plan.runbook,
            "mode": plan.mode,
            "running": RunStatus.RUNNING.value,
            "context": dumps(plan.context),
            "plan": dumps(plan.definitions),
            "lease_owner": plan.lease_owner,
            "lease_expires_at": plan.lease_expires_at,
            "steps": dumps(
                [
                    {"position": i, "name": name, "action": step.action, "title": step.title}
                    for i, (name, step) in enumerate(plan.steps)
                ]
            ),
            "pending": StepStatus.PENDING.value,
            "key_status": plan.key_status.value,
            "events": dumps(events),
            **plan.workspace,
        }
        step_ids = list(conn.exec_driver_sql(STATEMENT, params).scalars().all())
    if len(step_ids) != len(plan.steps):
        return None
    return plan.opened(key, incident_id, step_ids, head)
