"""The engine's write path for a run it holds a lease on.

The engine keeps the run, its steps and the incident's chain head in memory and writes each transition as
one transaction of Core statements: the run row (lease extended, lease owner checked), the steps that
changed, the timeline events recorded since the last write, and any extra work an action queued. Nothing
is re-read between steps, so a transition costs a handful of statements instead of an ORM reload.

Only an abort can change a run while its lease is held; the run row's UPDATE never overwrites it and hands
the stored status back, so the engine learns of the abort at its next write.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, case, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.db.base import utcnow
from bot.incidents import chain
from bot.incidents.chain import Head, PendingEvent
from bot.incidents.models import Incident, IncidentStatus
from bot.runbooks.models import KeyLock, Run, RunStatus, RunStep, StepStatus

WRITE_ATTEMPTS = 5

RUNS = cast(Table, Run.__table__)
STEPS = cast(Table, RunStep.__table__)
INCIDENTS = cast(Table, Incident.__table__)
LOCKS = cast(Table, KeyLock.__table__)
STEP_FIELDS = (
    "status",
    "attempts",
    "started_at",
    "finished_at",
    "last_error",
    "skip_reason",
    "approved_by",
    "done_by",
    "output",
)



def _typed(name: str, column: str) -> Any:
    return bindparam(name, type_=RUNS.c[column].type)


_ABORTED = RUNS.c.status == RunStatus.ABORTED.value
WRITE_RUN = (
    update(RUNS)
    .where(RUNS.c.id == bindparam("run_id"), RUNS.c.lease_owner == bindparam("worker"))
    .values(
        status=case((_ABORTED, RUNS.c.status), else_=_typed("new_status", "status")),
        attention=case((_ABORTED, RUNS.c.attention), else_=_typed("new_attention", "attention")),
        finished_at=case((_ABORTED, RUNS.c.finished_at), else_=_typed("new_finished_at", "finished_at")),
        context=_typed("new_context", "context"),
        lease_owner=_typed("new_owner", "lease_owner"),
        lease_expires_at=_typed("new_expiry", "lease_expires_at"),
    )
    .returning(RUNS.c.status)
)
"""One statement per transition: the run row, only while this worker holds it; an abort is never undone."""

WRITE_STEP = update(STEPS).where(STEPS.c.id == bindparam("step_id"))


class LeaseLost(Exception):
    """Another process took the run over (our lease expired); this process must stop touching it."""


@dataclass
class StepState:
    id: int
    name: str
    action: str
    title: str
    status: StepStatus
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    last_error: str | None
    skip_reason: str | None
    approved_by: str | None
    done_by: str | None
    output: dict[str, Any]

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
    context: dict[str, Any]
    finished_at: datetime | None
    steps: list[StepState]
    incident_status: IncidentStatus | None = None
    incident_opened_at: datetime | None = None

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
        context=dict(row["context"] or {}),
        finished_at=row["finished_at"],
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
    """Writes one run's transitions on a connection held for the whole `execute` (no pool round trips)."""

    conn: Connection
    run: RunState
    worker: str
    lease_ttl: timedelta
    head: Head | None = None  # None: read it at the first write
    _events: list[PendingEvent] = field(default_factory=list)
    _work: list[Callable[[Connection], Any]] = field(default_factory=list)
    _dirty: set[str] = field(default_factory=set)
    _finished: bool = False

    def event(self, kind: str, data: dict[str, Any] | None = None, *, step: str | None = None,
              actor: str | None = None) -> None:  # fmt: skip
        """Record an event now (its time is now); it is written with the next transition."""
        if self.run.incident_id is not None:
            actor = actor or self.run.initiated_by
            self._events.append(PendingEvent.now(kind, actor, data, run_id=self.run.id, step=step))

    def changed(self, step: StepState) -> None:
        self._dirty.add(step.name)

    def also(self, work: Callable[[Connection], Any]) -> None:
        """Extra statements for the next write, in the same transaction (re-run if that write is retried)."""
        self._work.append(work)

    def set_incident_status(self, status: IncidentStatus, actor: str) -> bool:
        """Queue an incident status change (with its timeline event); False when it already had it."""
        incident_id = self.run.incident_id
        if incident_id is None or self.run.incident_status in (status, None):
            return False
        now = utcnow()
        values: dict[str, Any] = {"status": status}
        if status in (IncidentStatus.CONTAINED, IncidentStatus.RESOLVED):
            values["contained_at"] = func.coalesce(INCIDENTS.c.contained_at, now)
        if status is IncidentStatus.RESOLVED:
            values["resolved_at"] = now
        statement = update(INCIDENTS).where(INCIDENTS.c.id == incident_id).values(**values)
        self.also(lambda conn: conn.execute(statement))
        self.event(f"incident.{status.value}", actor=actor)
        self.run.incident_status = status
        return True

    def finish(self) -> None:
        """The run succeeded: free the key, resolve the incident, give up the lease, all in the next write."""
        run = self.run
        run.status, run.finished_at, self._finished = RunStatus.SUCCEEDED, utcnow(), True
        statement = delete(LOCKS).where(LOCKS.c.key_id == run.key_id, LOCKS.c.run_id == run.id)
        self.also(lambda conn: conn.execute(statement))
        self.event("run.succeeded")
        self.set_incident_status(IncidentStatus.RESOLVED, run.initiated_by)

    def commit(self, *, release: bool = False, hold_extra: float = 0.0) -> RunStatus:
        """Write everything recorded since the last write; returns the run's stored status.

        `hold_extra` seconds are added to the lease (a backoff sleep must not let it lapse).
        """
        for attempt in range(WRITE_ATTEMPTS):
            try:
                with self.conn.begin():
                    if self.head is None:
                        self.head = self._read_head()
                    stored = self._write_run(release or self._finished, hold_extra)
                    self._write_steps()
                    for extra in self._work:
                        extra(self.conn)
                    head = self._write_events(self.head)
            except IntegrityError:
                if attempt == WRITE_ATTEMPTS - 1 or not self._head_moved():
                    raise
                continue
            self.head = head
            self._events, self._work, self._dirty = [], [], set()
            if stored is RunStatus.ABORTED and self.run.status is not RunStatus.ABORTED:
                self.run.status = RunStatus.ABORTED
            return self.run.status
        raise AssertionError("unreachable")

    def _write_events(self, head: Head) -> Head:
        if self.run.incident_id is None:
            return head
        return chain.write(self.conn, self.run.incident_id, head, self._events)

    def _head_moved(self) -> bool:
        """After a failed write: did someone else append to the incident (then retry on the new head)?"""
        with self.conn.begin():
            current = self._read_head()
        moved, self.head = current != self.head, current
        return moved

    def _read_head(self) -> Head:
        if self.run.incident_id is None:
            return Head(0, chain.GENESIS)
        return chain.head(self.conn, self.run.incident_id)

    def _write_run(self, release: bool, hold_extra: float) -> RunStatus:
        run = self.run
        params = {
            "run_id": run.id,
            "worker": self.worker,
            "new_status": run.status,
            "new_attention": run.attention,
            "new_finished_at": run.finished_at,
            "new_context": run.context,
            "new_owner": None if release else self.worker,
            "new_expiry": None if release else utcnow() + self.lease_ttl + timedelta(seconds=hold_extra),
        }
        stored = self.conn.execute(WRITE_RUN, params).scalar()
        if stored is None:
            raise LeaseLost(f"run {run.id} is no longer leased to this process")
        return RunStatus(stored)

    def _write_steps(self) -> None:
        if not self._dirty:
            return
        rows = [{"step_id": s.id, **s.values()} for s in self.run.steps if s.name in self._dirty]
        self.conn.execute(WRITE_STEP, rows)
