"""Durable waits: a run waiting for people or time holds no thread and no lease.

The engine parks a waiting step (status `waiting`, the run's `wake_at` set) and gives the run back. It
is moved on by whichever comes first: the event it waits for (a consumer's **Redeployed**, an on-call's
**Revoke now** / **Wait longer**), applied here, or its wake time, when the clock's `wake_due` hands it
back to the engine. Reminders and paging reuse the same primitive.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import select

from bot.access.policy import Actor, Decision, Policy
from bot.db.base import utcnow
from bot.db.session import Database
from bot.runbooks.decisions import Decided, Seen, _bind, _event, _load, _open, as_actor, subject_of
from bot.runbooks.models import Run, RunStatus, RunStep, StepStatus
from bot.runbooks.refusals import RunRefused

MAX_EXTENSION_MINUTES = 24 * 60


def _wake(run: Run) -> None:
    for step in run.steps:
        if step.status is StepStatus.WAITING:
            step.status = StepStatus.PENDING
    run.status, run.wake_at = RunStatus.RUNNING, None
    run.version += 1


def wake_due(database: Database, now: datetime | None = None, limit: int = 100) -> list[str]:
    """Hand every run whose wait is over back to the engine (running, no lease): the resume job or a
    worker then carries it on. Two clocks never wake a run twice: rows are locked (SKIP LOCKED)."""
    now = now or utcnow()
    with database.session() as session:
        runs = session.scalars(
            select(Run)
            .where(Run.status == RunStatus.WAITING, Run.wake_at <= now)
            .order_by(Run.wake_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        for run in runs:
            _wake(run)
        return [run.id for run in runs]


def _distribute_step(run: Run) -> RunStep:
    step = next((s for s in run.steps if s.action == "distribute"), None)
    if step is None:
        raise RunRefused(f"run {run.id} has no distribute step")
    return step


def confirm_redeployed(
    database: Database, run_id: str, consumer: str, actor: Actor | str, *, policy: Policy
) -> Decided:
    """A consumer's contact (or an owner, the starter, an on-call) says the consumer reads the new key.
    The last confirmation wakes the run at once."""
    who = as_actor(actor)
    with database.session() as session:
        run, key = _load(session, run_id)
        _open(run)
        step = _distribute_step(run)
        consumers = {c.name: c.contact for c in key.consumers}
        if consumer not in consumers:
            raise RunRefused(f"{consumer!r} is not a recorded consumer of {key.name}")
        subject = subject_of(run, key, step)
        contacts = tuple(c for c in consumers.values() if c)
        policy.check(Decision.CONFIRM_REDEPLOY, who, replace(subject, contacts=contacts))
        if step.status.done:
            return Decided(run_id, f"{step.title} is already done; thank you.", proceed=False)
        confirmed = dict(run.context.get("confirmed") or {})
        if consumer in confirmed:
            return Decided(
                run_id, f"{consumer} was already confirmed by {confirmed[consumer]}.", proceed=False
            )
        confirmed[consumer] = who.id
        run.context = {**run.context, "confirmed": confirmed}
        run.version += 1
        _event(session, run, "consumer.redeployed", who, {"consumer": consumer}, step.name)
        waiting_on = [name for name, contact in consumers.items() if contact and name not in confirmed]
        if waiting_on or run.status is not RunStatus.WAITING:
            return Decided(
                run_id, f"Recorded: {consumer} redeployed. Still waiting for {len(waiting_on)}.", False
            )
        _wake(run)
    return Decided(run_id, f"Recorded: {consumer} redeployed. Every consumer has confirmed; carrying on.")


def revoke_now(
    database: Database, run_id: str, actor: Actor | str, *, policy: Policy, seen: Seen | None = None
) -> Decided:
    """After the deadline: stop waiting for consumers; the old key is revoked next (after any approval)."""
    who = as_actor(actor)
    with database.session() as session:
        run, key = _load(session, run_id)
        _open(run)
        step = _distribute_step(run)
        _bind(run, step, seen)
        if step.status not in (StepStatus.WAITING_MANUAL, StepStatus.WAITING):
            raise RunRefused(f"{step.title} is not waiting; nothing to decide")
        policy.check(Decision.STOP_WAITING, who, subject_of(run, key, step))
        confirmed = run.context.get("confirmed") or {}
        unconfirmed = sorted(c.name for c in key.consumers if c.contact and c.name not in confirmed)
        step.status, step.finished_at = StepStatus.SUCCEEDED, utcnow()
        step.output = {"revoke_now_by": who.id, "unconfirmed": unconfirmed}
        run.status, run.wake_at = RunStatus.RUNNING, None
        run.version += 1
        _event(session, run, "distribute.revoke_now", who, {"unconfirmed": unconfirmed}, step.name)
    return Decided(run_id, "Stopped waiting; the old key is revoked next.")


def wait_longer(
    database: Database,
    run_id: str,
    actor: Actor | str,
    minutes: float,
    *,
    policy: Policy,
    seen: Seen | None = None,
) -> Decided:
    """After the deadline: wait `minutes` more for consumers (the wait is durable again)."""
    who = as_actor(actor)
    if not 0 < minutes <= MAX_EXTENSION_MINUTES:
        raise RunRefused(f"wait between 1 minute and {MAX_EXTENSION_MINUTES // 60} hours")
    with database.session() as session:
        run, key = _load(session, run_id)
        _open(run)
        step = _distribute_step(run)
        _bind(run, step, seen)
        if step.status is not StepStatus.WAITING_MANUAL:
            raise RunRefused(f"{step.title} is not waiting for a decision")
        policy.check(Decision.STOP_WAITING, who, subject_of(run, key, step))
        deadline = utcnow() + timedelta(minutes=minutes)
        wait = dict(run.context.get("distribute") or {})
        wait["deadline"] = deadline.isoformat()
        run.context = {**run.context, "distribute": wait}
        step.status, step.output = (
            StepStatus.PENDING,
            {"waiting": f"waiting longer, until {deadline:%H:%M} UTC"},
        )
        run.status, run.wake_at = RunStatus.RUNNING, None
        run.version += 1
        _event(session, run, "distribute.wait_longer", who, {"until": deadline.isoformat()}, step.name)
    return Decided(run_id, f"Waiting for consumers until {deadline:%H:%M} UTC.")
