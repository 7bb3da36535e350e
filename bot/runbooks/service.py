"""Starting runs and the human decisions on them: approve, retry, skip, abort, mark done.

These are what the Slack buttons and the CLI call; they change state only, and the caller then asks the
engine to carry on. Each returns the run id or raises a `RunRefused` whose message tells the person why.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import NotRequired, TypedDict, Unpack

from sqlalchemy.orm import Session

from bot.db.base import utcnow
from bot.db.session import Database
from bot.incidents.service import append_event
from bot.runbooks.definitions import RunbookDefinition
from bot.runbooks.models import KeyLock, Run, RunStatus, RunStep, StepStatus
from bot.runbooks.opening import OpenedRun, RunPlan, open_with_core
from bot.runbooks.pg_open import open_on_postgresql
from bot.runbooks.refusals import KeyBusy, RunRefused

__all__ = [
    "KeyBusy", "OpenedRun", "RunRefused", "RunRequest",
    "abort", "approve", "mark_done", "open_run", "retry_step", "skip_step", "start_run",
]  # fmt: skip

MAX_REASON = 500


def _event(
    session: Session, run: Run, kind: str, actor: str, data: dict[str, object], step: str | None = None
) -> None:
    if run.incident_id is not None:
        append_event(session, run.incident_id, kind, actor, data, run_id=run.id, step=step)


class RunRequest(TypedDict):
    """What a person asks for when they start a run (Slack, CLI, bulk)."""

    key_id: int
    runbook: str
    mode: str | None  # None: the runbook's default mode
    actor: str
    reason: str
    severity: NotRequired[str]
    drill: NotRequired[bool]
    contain: NotRequired[bool]  # narrow the key's scopes first (reversible containment)


def start_run(
    database: Database, runbooks: dict[str, RunbookDefinition], **request: Unpack[RunRequest]
) -> str:
    """Open a run (its incident, steps and key lock) for any engine to execute; returns its id."""
    return open_run(database, runbooks, **request).state.id


def open_run(
    database: Database,
    runbooks: dict[str, RunbookDefinition],
    *,
    lease: tuple[str, timedelta] | None = None,
    **request: Unpack[RunRequest],
) -> OpenedRun:
    """`start_run`, optionally leasing the run to the engine that executes it next (see Engine.start)."""
    runbook, actor, reason = request["runbook"], request["actor"], request["reason"]
    definition = runbooks.get(runbook)
    if definition is None:
        raise RunRefused(f"unknown runbook {runbook!r}; known: {', '.join(sorted(runbooks))}")
    mode = request["mode"] or definition.default_mode
    if mode not in definition.modes:
        raise RunRefused(f"runbook {runbook} has no mode {mode!r}; choose {', '.join(definition.modes)}")
    reason = reason.strip()
    if definition.incident and not reason:
        raise RunRefused("a reason is required (what happened, where the key leaked)")
    now = utcnow()
    plan = RunPlan(
        run_id="run_" + secrets.token_hex(6),
        key_id=request["key_id"],
        runbook=runbook,
        mode=mode,
        actor=actor,
        reason=reason[:MAX_REASON],
        severity=request.get("severity", "sev2"),
        drill=request.get("drill", False),
        contain=request.get("contain", False),
        incident=definition.incident,
        steps=definition.plan(mode),
        now=now,
        lease_owner=lease[0] if lease else None,
        lease_expires_at=now + lease[1] if lease else None,
    )
    if database.engine.dialect.name == "postgresql":
        opened = open_on_postgresql(database.engine, plan)
        if opened is not None:
            return opened
    return open_with_core(database.engine, plan)  # also where a taken lock is looked at


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
