"""Starting runs and the human decisions on them: approve, retry, skip, abort, mark done.

These are what the Slack buttons and the CLI call; they change state only, and the caller then asks the
engine to carry on. Each returns the run id or raises a `RunRefused` whose message tells the person why.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import cast

from sqlalchemy import Connection, Table, delete, insert, select, update
from sqlalchemy.orm import Session

from bot.db.base import utcnow
from bot.db.session import Database
from bot.db.upsert import insert_unless_present
from bot.incidents import chain
from bot.incidents.chain import GENESIS, Head, PendingEvent
from bot.incidents.models import Incident, IncidentStatus
from bot.incidents.service import append_event
from bot.registry.models import Key, KeyStatus
from bot.runbooks.context import KeyFacts
from bot.runbooks.definitions import RunbookDefinition
from bot.runbooks.journal import RunState, StepState
from bot.runbooks.models import KeyLock, Run, RunStatus, RunStep, StepStatus

MAX_REASON = 500
KEYS = cast(Table, Key.__table__)
INCIDENTS = cast(Table, Incident.__table__)
RUNS = cast(Table, Run.__table__)
STEPS = cast(Table, RunStep.__table__)
LOCKS = cast(Table, KeyLock.__table__)


class RunRefused(Exception):
    """The request is not allowed right now; the message says why and what to do instead."""


class KeyBusy(RunRefused):
    """Another run holds the key's lock."""

    def __init__(self, key_name: str, run_id: str, holder: str) -> None:
        super().__init__(f"{key_name} is already being handled by run {run_id} (started by {holder})")
        self.key_name, self.run_id, self.holder = key_name, run_id, holder


def _event(
    session: Session, run: Run, kind: str, actor: str, data: dict[str, object], step: str | None = None
) -> None:
    if run.incident_id is not None:
        append_event(session, run.incident_id, kind, actor, data, run_id=run.id, step=step)


def start_run(
    database: Database,
    runbooks: dict[str, RunbookDefinition],
    *,
    key_id: int,
    runbook: str,
    mode: str | None,
    actor: str,
    reason: str,
    severity: str = "sev2",
    drill: bool = False,
    contain: bool = False,
) -> str:
    """Open a run (its incident, steps and key lock) for any engine to execute; returns its id."""
    return open_run(
        database, runbooks, key_id=key_id, runbook=runbook, mode=mode, actor=actor, reason=reason,
        severity=severity, drill=drill, contain=contain,
    ).state.id  # fmt: skip


@dataclass
class OpenedRun:
    """A run just opened and leased to `lease_owner`: everything its engine would otherwise read back."""

    state: RunState
    key: KeyFacts
    head: Head
    lease_owner: str | None


def open_run(
    database: Database,
    runbooks: dict[str, RunbookDefinition],
    *,
    key_id: int,
    runbook: str,
    mode: str | None,
    actor: str,
    reason: str,
    severity: str = "sev2",
    drill: bool = False,
    contain: bool = False,
    lease: tuple[str, timedelta] | None = None,
) -> OpenedRun:
    """`start_run`, optionally leasing the run to the engine that executes it next (see Engine.start)."""
    definition = runbooks.get(runbook)
    if definition is None:
        raise RunRefused(f"unknown runbook {runbook!r}; known: {', '.join(sorted(runbooks))}")
    mode = mode or definition.default_mode
    if mode not in definition.modes:
        raise RunRefused(f"runbook {runbook} has no mode {mode!r}; choose {', '.join(definition.modes)}")
    reason = reason.strip()
    if definition.incident and not reason:
        raise RunRefused("a reason is required (what happened, where the key leaked)")
    run_id = "run_" + secrets.token_hex(6)
    reason = reason[:MAX_REASON]
    context = {"reason": reason, "contain": contain}
    now = utcnow()
    with database.engine.begin() as conn:
        facts = KeyFacts.load(conn, key_id)
        if facts is None:
            raise RunRefused(f"no key #{key_id} in the registry")
        incident_id, events, head = None, [], Head(0, GENESIS)
        if definition.incident:
            title = f"{'[DRILL] ' if drill else ''}Leaked key {facts.name} ({facts.environment})"
            incident_id = conn.execute(
                insert(INCIDENTS)
                .values(
                    key_id=key_id,
                    title=title[:300],
                    opened_by=actor,
                    reason=reason,
                    severity=severity,
                    drill=drill,
                    opened_at=now,
                )
                .returning(INCIDENTS.c.id)
            ).scalar_one()
            events.append(PendingEvent.now("incident.opened", actor, {"title": title, "reason": reason}))
        conn.execute(
            insert(RUNS).values(
                id=run_id,
                runbook=runbook,
                mode=mode,
                key_id=key_id,
                incident_id=incident_id,
                initiated_by=actor,
                reason=reason,
                drill=drill,
                context=context,
                lease_owner=lease[0] if lease else None,
                lease_expires_at=now + lease[1] if lease else None,
            )
        )
        plan = definition.plan(mode)
        step_ids = (
            conn.execute(
                insert(STEPS).returning(STEPS.c.id, sort_by_parameter_order=True),
                [
                    {
                        "run_id": run_id,
                        "position": i,
                        "name": name,
                        "action": step.action,
                        "title": step.title,
                    }
                    for i, (name, step) in enumerate(plan)
                ],
            )
            .scalars()
            .all()
        )
        _take_lock(conn, key_id, facts.name, run_id, actor)
        status = KeyStatus.COMPROMISED if definition.incident else KeyStatus.ROTATING
        conn.execute(update(KEYS).where(KEYS.c.id == key_id).values(status=status))
        if incident_id is not None:
            started = {"runbook": runbook, "mode": mode, "drill": drill}
            events.append(PendingEvent.now("run.started", actor, started, run_id=run_id))
            head = chain.write(conn, incident_id, head, events)
    state = RunState(
        id=run_id,
        runbook=runbook,
        mode=mode,
        key_id=key_id,
        incident_id=incident_id,
        status=RunStatus.RUNNING,
        initiated_by=actor,
        drill=drill,
        attention=None,
        context=context,
        finished_at=None,
        steps=[
            StepState(step_id, name, step.action, step.title)
            for step_id, (name, step) in zip(step_ids, plan, strict=True)
        ],
        incident_status=IncidentStatus.OPEN if incident_id is not None else None,
        incident_opened_at=now if incident_id is not None else None,
    )
    return OpenedRun(state, facts, head, lease[0] if lease else None)


def _take_lock(conn: Connection, key_id: int, key_name: str, run_id: str, actor: str) -> None:
    """One active run per key: the lock row's primary key is the key id; a finished run's lock is stale.

    The insert is tried first (on PostgreSQL a concurrent starter waits for ours to commit, then sees it);
    only when the key is taken is the holder looked at.
    """
    lock = {"key_id": key_id, "run_id": run_id, "holder": actor, "acquired_at": utcnow()}
    insert_lock = insert_unless_present(conn.dialect.name, LOCKS, ["key_id"])
    for _ in range(3):
        if conn.execute(insert_lock.returning(LOCKS.c.key_id), [lock]).first() is not None:
            return
        holder = conn.execute(
            select(LOCKS.c.run_id, LOCKS.c.holder, RUNS.c.status)
            .join(RUNS, RUNS.c.id == LOCKS.c.run_id, isouter=True)
            .where(LOCKS.c.key_id == key_id)
        ).first()
        if holder is None:
            continue
        if holder.status is not None and not RunStatus(holder.status).finished:
            raise KeyBusy(key_name, holder.run_id, holder.holder)
        conn.execute(delete(LOCKS).where(LOCKS.c.key_id == key_id, LOCKS.c.run_id == holder.run_id))
    raise KeyBusy(key_name, "?", "another run starting at the same moment")


def _load(session: Session, run_id: str) -> Run:
    run = session.get(Run, run_id, with_for_update=True)
    if run is None:
        raise RunRefused(f"no run {run_id!r}")
    return run


def _current(run: Run, *statuses: StepStatus) -> RunStep:
    step = next((s for s in run.steps if s.status in statuses), None)
    if step is None:
        raise RunRefused(f"run {run.id} is {run.status.value}; there is no step in that state")
    return step


def approve(database: Database, run_id: str, actor: str) -> str:
    with database.session() as session:
        run = _load(session, run_id)
        if run.status is not RunStatus.AWAITING_APPROVAL:
            raise RunRefused(f"run {run_id} is {run.status.value}, not waiting for approval")
        step = _current(run, StepStatus.AWAITING_APPROVAL)
        if actor == run.initiated_by:
            raise RunRefused(
                "two-person rule: you started this run, so someone else must approve it "
                "(ask the second on-call)"
            )
        step.approved_by = actor
        step.status = StepStatus.PENDING
        run.status = RunStatus.RUNNING
        _event(session, run, "step.approved", actor, {"step": step.name}, step.name)
    return run_id


def retry_step(database: Database, run_id: str, actor: str) -> str:
    with database.session() as session:
        run = _load(session, run_id)
        if run.status is not RunStatus.NEEDS_ATTENTION:
            raise RunRefused(
                f"run {run_id} is {run.status.value}; only a run that needs attention can be retried"
            )
        step = _current(run, StepStatus.NEEDS_ATTENTION)
        step.status, step.attempts = StepStatus.PENDING, 0
        run.status, run.attention = RunStatus.RUNNING, None
        _event(session, run, "step.retry_requested", actor, {"step": step.name}, step.name)
    return run_id


def skip_step(database: Database, run_id: str, actor: str, reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise RunRefused("skipping a step needs a reason (it goes on the incident timeline)")
    with database.session() as session:
        run = _load(session, run_id)
        if run.status.finished:
            raise RunRefused(f"run {run_id} already {run.status.value}")
        if run.status is RunStatus.AWAITING_APPROVAL:
            raise RunRefused("this step needs approval; it cannot be skipped (approve it, or abort the run)")
        step = _current(run, StepStatus.NEEDS_ATTENTION, StepStatus.WAITING_MANUAL)
        if step.action == "identify":
            raise RunRefused("identify cannot be skipped")
        step.status, step.skip_reason, step.finished_at = StepStatus.SKIPPED, reason[:MAX_REASON], utcnow()
        run.status, run.attention = RunStatus.RUNNING, None
        _event(
            session, run, "step.skipped", actor, {"step": step.name, "reason": reason[:MAX_REASON]}, step.name
        )
    return run_id


def mark_done(database: Database, run_id: str, actor: str, note: str = "") -> str:
    with database.session() as session:
        run = _load(session, run_id)
        if run.status is not RunStatus.WAITING_MANUAL:
            raise RunRefused(f"run {run_id} is {run.status.value}; no manual step is waiting")
        step = _current(run, StepStatus.WAITING_MANUAL)
        step.status, step.done_by, step.finished_at = StepStatus.SUCCEEDED, actor, utcnow()
        step.output = {**step.output, "note": note[:MAX_REASON]}
        run.status = RunStatus.RUNNING
        _event(
            session, run, "step.marked_done", actor, {"step": step.name, "note": note[:MAX_REASON]}, step.name
        )
    return run_id


def abort(database: Database, run_id: str, actor: str, reason: str) -> str:
    with database.session() as session:
        run = _load(session, run_id)
        if run.status.finished:
            raise RunRefused(f"run {run_id} already {run.status.value}")
        run.status, run.finished_at = RunStatus.ABORTED, utcnow()
        run.attention = f"aborted by {actor}: {reason.strip()[:MAX_REASON] or 'no reason given'}"
        lock = session.get(KeyLock, run.key_id)
        if lock is not None and lock.run_id == run.id:
            session.delete(lock)
        _event(session, run, "run.aborted", actor, {"reason": reason.strip()[:MAX_REASON]})
    return run_id
