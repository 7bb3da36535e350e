"""Runs waiting for a person or for time: what the shell lists at start and before it quits.

A waiting run holds no process, so quitting is safe; but the person who quits should know that a
production revocation still waits for its approval, and see it again at the next start.
"""

from __future__ import annotations

from sqlalchemy import select

from bot.db.session import Database
from bot.incidents.models import reference_for
from bot.registry.models import Key
from bot.runbooks.models import Run, RunStatus

WAITING = {
    RunStatus.AWAITING_APPROVAL: "waits for a second person's approval",
    RunStatus.WAITING_MANUAL: "waits for a step done by hand",
    RunStatus.WAITING: "waits for consumers to redeploy (or for its deadline)",
}


def waiting_runs(database: Database) -> list[str]:
    """One line per run that waits for a person or for time, oldest first."""
    query = (
        select(Run.id, Run.status, Run.incident_id, Run.drill, Key.name)
        .join(Key, Key.id == Run.key_id)
        .where(Run.status.in_(list(WAITING)))
        .order_by(Run.created_at)
    )
    with database.session() as session:
        rows = session.execute(query).all()
    lines = []
    for run_id, status, incident_id, drill, key_name in rows:
        incident = f" ({reference_for(incident_id)})" if incident_id is not None else ""
        label = "[DRILL] " if drill else ""
        lines.append(f"{label}{key_name}: run {run_id}{incident} {WAITING[RunStatus(status)]}")
    return lines
