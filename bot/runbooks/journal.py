"""The engine's record of a run it holds a lease on.

The engine reads the run once (or opens it: Engine.start), keeps it and the incident's chain head in
memory, and records each transition here: the steps that changed, the timeline events, and the rows a step
changes with them (outbox notifications, the incident's status, the key lock, the rotated registry row).
`commit` hands them to the run's writer (bot/runbooks/writer.py) as one `Batch`, written atomically: one
statement on PostgreSQL, one transaction on SQLite. Nothing is re-read between steps.

Only an abort can change a run while its lease is held; the run row's UPDATE never overwrites it and hands
the stored status back, so the engine learns of the abort from the next write.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db.base import utcnow
from bot.incidents.chain import PendingEvent
from bot.incidents.models import IncidentStatus
from bot.notifications.service import Message, outbox_rows
from bot.postmortems.outbox import draft_messages, draft_prefix
from bot.runbooks import guarantees
from bot.runbooks.definitions import StepDefinition
from bot.runbooks.models import RunStatus, StepStatus
from bot.runbooks.run_context import RunContext
from bot.runbooks.transition import INCIDENTS, RUNS, STEP_FIELDS, STEPS, Batch, IncidentChange, KeyRotated
from bot.runbooks.writer import LeaseLost, Writer
from bot.workspace import Workspace


@dataclass
class StepState:
    id: int
    name: str
    action: str
    title: str
    status: StepStatus = StepStatus.PENDING
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    last_error: str | None = None
    skip_reason: str | None = None
    approved_by: str | None = None
    done_by: str | None = None
    output: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in STEP_FIELDS}


@dataclass
class RunState:
    id: str
    runbook: str
    mode: str
    key_id: int
    incident_id: int | None
    status: RunStatus
    initiated_by: str
    drill: bool
    attention: str | None
    context: RunContext
    finished_at: datetime | None
    steps: list[StepState]
    wake_at: datetime | None = None
    plan: dict[str, StepDefinition] | None = None  # the steps as the run started (None: an older run)
    incident_status: IncidentStatus | None = None
    incident_opened_at: datetime | None = None
    workspace: Workspace | None = None  # the Slack workspace whose request started it (OAuth mode)

    def step(self, name: str) -> StepState:
        return next(s for s in self.steps if s.name == name)


def load(session: Session, run_id: str) -> RunState | None:
    row = session.execute(select(RUNS).where(RUNS.c.id == run_id)).mappings().first()
    if row is None:
        return None
    steps = session.execute(
        select(STEPS).where(STEPS.c.run_id == run_id).order_by(STEPS.c.position)
    ).mappings()
    state = RunState(
        id=row["id"],
        runbook=row["runbook"],
        mode=row["mode"],
        key_id=row["key_id"],
        incident_id=row["incident_id"],
        status=row["status"],
        initiated_by=row["initiated_by"],
        drill=row["drill"],
        attention=row["attention"],
        context=cast(RunContext, dict(row["context"] or {})),
        finished_at=row["finished_at"],
        wake_at=row["wake_at"],
        workspace=Workspace.of(row["slack_enterprise_id"], row["slack_team_id"]),
        plan={name: StepDefinition.model_validate(d) for name, d in row["plan"].items()}
        if row["plan"]
        else None,
        steps=[
            StepState(
                id=s["id"],
                name=s["name"],
                action=s["action"],
                title=s["title"],
                **{name: s[name] for name in STEP_FIELDS},
            )
            for s in steps
        ],
    )
    if state.incident_id is not None:
        incident = session.execute(
            select(INCIDENTS.c.status, INCIDENTS.c.opened_at).where(INCIDENTS.c.id == state.incident_id)
        ).first()
        if incident is not None:
            state.incident_status, state.incident_opened_at = incident.status, incident.opened_at
    return state


@dataclass
class Journal:
    """What the engine records about a run it holds, until `commit` writes it."""

    run: RunState
    writer: Writer
    _events: list[PendingEvent] = field(default_factory=list)
    _notifications: list[dict[str, Any]] = field(default_factory=list)
    _incident: IncidentChange | None = None
    _key_rotated: KeyRotated | None = None
    _dirty: set[str] = field(default_factory=set)
    _finished: bool = False
    _since: float | None = None  # when the oldest unwritten record was made

    @property
    def aborted(self) -> bool:
        """Someone aborted the run (learnt from the last write)."""
        return self.writer.aborted

    def event(self, kind: str, data: dict[str, Any] | None = None, *, step: str | None = None,
              actor: str | None = None) -> None:  # fmt: skip
        """Record an event now (its time is now); it is written with the next transition."""
        if self.run.incident_id is not None:
            actor = actor or self.run.initiated_by
            self._events.append(PendingEvent.now(kind, actor, data, run_id=self.run.id, step=step))
            self._recorded()

    def changed(self, step: StepState) -> None:
        self._dirty.add(step.name)
        self._recorded()

    def flush(self, older_than: float = 0.0) -> None:
        """Write what was recorded, if anything recorded has waited at least `older_than` seconds."""
        if self._since is not None and time.monotonic() - self._since >= older_than:
            self.commit()

    def _recorded(self) -> None:
        self._since = self._since or time.monotonic()

    def enqueue(self, messages: list[Message], dedupe_prefix: str) -> None:
        """Notifications for the outbox, written with the next transition (deduplicated by key, so a
        re-run never queues one twice)."""
        rows = outbox_rows(
            messages, dedupe_prefix=dedupe_prefix, incident_id=self.run.incident_id, run_id=self.run.id
        )
        self._notifications.extend(rows)
        self._recorded()

    def key_rotated(self, rotated: KeyRotated) -> None:
        """The registry row describes the replacement from the next transition on."""
        self._key_rotated = rotated
        self._recorded()

    def set_incident_status(self, status: IncidentStatus, actor: str) -> bool:
        """Queue an incident status change (with its timeline event); False when it already had it."""
        if self.run.incident_id is None or self.run.incident_status in (status, None):
            return False
        resolved = status is IncidentStatus.RESOLVED
        change = IncidentChange(
            status, contained=resolved or status is IncidentStatus.CONTAINED, resolved=resolved
        )
        self._incident = self._incident.then(change) if self._incident else change
        self.event(f"incident.{status.value}", actor=actor)
        self.run.incident_status = status
        return True

    def finish(self) -> None:
        """Every step is done: free the key and give up the lease in the next write. The run succeeded and
        its incident is resolved only when no guarantee is missing; otherwise it finished with exceptions,
        and the incident stays open for a person to resolve."""
        run = self.run
        missing = guarantees.exceptions(list(run.steps))
        run.finished_at, self._finished = utcnow(), True
        if missing:
            run.status = RunStatus.FINISHED_WITH_EXCEPTIONS
            run.attention = "; ".join(missing)[:2000]
            self.event("run.finished_with_exceptions", {"missing": missing})
        else:
            run.status = RunStatus.SUCCEEDED
            self.event("run.succeeded", {"attested": guarantees.attestations(list(run.steps))})
            if self.set_incident_status(IncidentStatus.RESOLVED, run.initiated_by) and run.incident_id:
                drafts = draft_messages(run.incident_id, drill=run.drill, starter=run.initiated_by)
                self.enqueue(drafts, draft_prefix(run.incident_id))
        self._recorded()

    def commit(self, *, release: bool = False, hold_extra: float = 0.0, announce: bool = False) -> RunStatus:
        """Write everything recorded since the last commit; returns the run's status (ABORTED if aborted).

        `hold_extra` seconds are added to the lease (a backoff sleep must not let it lapse). Progress
        displays are told to re-read the run whenever a step changed.
        """
        run = self.run
        batch = Batch(  # shares the run's objects: it is written before this returns, nothing changes them
            run={
                "status": run.status,
                "attention": run.attention,
                "finished_at": run.finished_at,
                "context": run.context,
                "wake_at": run.wake_at,
            },
            steps=[{"step_id": s.id, **s.values()} for s in run.steps if s.name in self._dirty],
            events=self._events,
            notifications=self._notifications,
            incident=self._incident,
            release_lock=self._finished,
            key_rotated=self._key_rotated,
            release=release or self._finished,
            hold_extra=hold_extra,
            announce=announce or bool(self._dirty),
        )
        self.writer.write(batch)  # on failure everything stays recorded, for the next attempt to write
        self._events, self._notifications, self._dirty, self._since = [], [], set(), None
        self._incident = self._key_rotated = None
        if self.writer.aborted:
            self.run.status = RunStatus.ABORTED
        return self.run.status


__all__ = ["Journal", "LeaseLost", "RunState", "StepState", "load"]
