"""Executes runs step by step. Every transition is committed (and on the timeline) before the next outside
call, so a process killed anywhere leaves a run another process can pick up where it stopped.

The run is read once per `execute` (not at all when this engine just opened it: `start`); from then on the
engine holds it in memory and records each transition in the journal, which writes what was recorded
atomically before the next outside change.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Collection
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Unpack

from sqlalchemy import and_, or_, select

from bot.access.policy import Policy
from bot.db.base import utcnow
from bot.db.session import Database
from bot.log import get_logger
from bot.observability.logcontext import bound
from bot.observability.metrics import observe_step
from bot.providers.base import ProviderError
from bot.runbooks import failpoints, journal, lease, pauses, service
from bot.runbooks.actions import ACTIONS
from bot.runbooks.context import (
    KeyFacts,
    NeedsDecision,
    NeedsHuman,
    RunAborted,
    StepContext,
    StepFailed,
    Toolkit,
    WaitFor,
    WaitSettings,
)
from bot.runbooks.definitions import RunbookDefinition, StepDefinition
from bot.runbooks.guard import STALE_SECONDS, guarded
from bot.runbooks.journal import LeaseLost, StepState
from bot.runbooks.models import Run, RunStatus, StepStatus
from bot.runbooks.writer import Writer
from bot.secrets import redact
from bot.workspace import bound as bound_workspace

log = get_logger(__name__)
UNCLAIMED_GRACE = timedelta(seconds=15)
"""How long a run nobody holds is left to the process that opened or woke it before the clock takes it."""


class RunBusy(Exception):
    """Another live process is executing this run."""


@dataclass(frozen=True)
class EngineConfig:
    lease_ttl: timedelta = timedelta(seconds=60)
    backoff_scale: float = 1.0
    max_backoff_seconds: float = 60.0
    waits: WaitSettings = field(default_factory=WaitSettings)
    durable_retry_after: float | None = None
    """A retry backoff at least this long parks the run (a durable timer: no thread, no lease) for the clock
    to wake; shorter ones, or all of them when None (the CLI, which has no clock), sleep in place."""


@dataclass
class _Work:
    ctx: StepContext
    definition: StepDefinition
    step: StepState


@dataclass
class Engine:
    database: Database
    runbooks: dict[str, RunbookDefinition]
    toolkit: Toolkit
    config: EngineConfig = field(default_factory=EngineConfig)
    worker: str = field(default_factory=lease.new_worker_id)
    on_change: Callable[[str], None] | None = None
    drill_toolkit: Callable[[], Toolkit] | None = None
    on_drill_end: Callable[[str], None] | None = None  # a drill's run finished: clean up after it
    policy: Policy = field(default_factory=Policy)  # who may start a run through `start`

    def start(self, **request: Unpack[service.RunRequest]) -> service.OpenedRun:
        """Open a run already leased to this engine; `execute(opened)` then starts without reading it back.

        Raises `RunRefused` like `service.start_run`.
        """
        lease = (self.worker, self.config.lease_ttl)
        return service.open_run(self.database, self.runbooks, policy=self.policy, lease=lease, **request)

    def execute(self, run: str | service.OpenedRun) -> RunStatus:
        """Run until the run finishes or pauses (approval, manual step, needs attention).

        `run` is a run id, or a run this engine just opened (`start`), which is executed from memory once.
        Every log line emitted meanwhile carries the run's id.
        """
        run_id = run if isinstance(run, str) else run.state.id
        with bound(run_id=run_id):
            return self._execute(run)

    def _execute(self, run: str | service.OpenedRun) -> RunStatus:
        opened = run if isinstance(run, service.OpenedRun) else None
        if opened is not None and opened.lease_owner == self.worker:
            opened.lease_owner = None  # from memory only once: afterwards the record is the database's
            state, facts, head = opened.state, opened.key, opened.head
        else:
            run_id = run if isinstance(run, str) else run.state.id
            with self.database.session() as session:
                if not lease.claim(session, run_id, self.worker, self.config.lease_ttl):
                    raise RunBusy(f"run {run_id} is being executed by {lease.holder(session, run_id)}")
                loaded = journal.load(session, run_id)
                found = KeyFacts.load(session.connection(), loaded.key_id) if loaded is not None else None
            if loaded is None or found is None:
                return RunStatus.ABORTED
            state, facts, head = loaded, found, None
        run_id = state.id
        writer = Writer(
            self.database.engine,
            run_id,
            state.key_id,
            state.incident_id,
            self.worker,
            self.config.lease_ttl,
            on_written=lambda: self._changed(run_id),
            _head=head,
        )
        released = False
        try:
            with bound_workspace(state.workspace):  # its messages and Slack calls go to its workspace
                released = self._drive(journal.Journal(state, writer), facts)
            if state.drill and state.status.finished and self.on_drill_end is not None:
                self.on_drill_end(run_id)
            return state.status
        except LeaseLost:
            released = True
            raise RunBusy(f"run {run_id} was taken over by another process") from None
        finally:
            writer.close()
            if not released:
                with self.database.session() as session:
                    lease.release(session, run_id, self.worker)

    def _drive(self, book: journal.Journal, facts: KeyFacts) -> bool:
        """Step until the run stops. True once the lease was given back.

        A step's end and the next one's start are recorded, and written before the next outside change
        (or a read, once a second old: bot/runbooks/guard.py), so steps that only read share a write.
        """
        finished_step: str | None = None
        while True:
            if book.aborted:
                book.run.status = RunStatus.ABORTED
            work = self._next(book, facts)
            if work is None:
                book.commit(release=True)
            if finished_step is not None:
                if failpoints.armed(f"after:{finished_step}"):
                    book.flush()
                failpoints.hit(f"after:{finished_step}")
            if work is None:
                return True
            started = time.perf_counter()
            finished_step = self._attempt(book, work)
            observe_step(work.step.name, work.step.status.value, time.perf_counter() - started)

    def _definition(self, run: journal.RunState, step: StepState) -> StepDefinition | None:
        """The step as the run started with it; None when the runbook no longer has the step (renamed or
        removed in the YAML), which a person must look at rather than the engine guess."""
        runbook = self.runbooks.get(run.runbook)
        current = runbook.steps.get(step.name) if runbook is not None else None
        if current is None:
            return None
        return (run.plan or {}).get(step.name, current)

    def _heartbeat(self, run_id: str) -> Callable[[], AbstractContextManager[object]]:
        """Around each outside call: renew the lease every third of its lifetime while the call lasts."""
        every = self.config.lease_ttl.total_seconds() / 3
        database, worker, ttl = self.database, self.worker, self.config.lease_ttl

        def beat() -> None:
            lease.extend(database.engine, run_id, worker, ttl)

        return lambda: lease.HEARTBEATS.during(every, beat)

    def _changed(self, run_id: str) -> None:
        if self.on_change is not None:
            try:
                self.on_change(run_id)
            except Exception:
                log.exception("progress callback failed", run_id=run_id)

    def _next(self, book: journal.Journal, key: KeyFacts) -> _Work | None:
        """Decide what happens next and record it (written at the next outside call, pause or end)."""
        run = book.run
        if run.status is not RunStatus.RUNNING:
            return None
        step = next((s for s in run.steps if not s.status.done), None)
        if step is None:
            book.finish()
            return None
        definition = self._definition(run, step)
        if definition is None or definition.action != step.action:
            step.status, run.status = StepStatus.NEEDS_ATTENTION, RunStatus.NEEDS_ATTENTION
            run.attention = (
                f"step {step.name!r} ({step.action}) is no longer defined in runbook {run.runbook!r}: it was "
                "renamed or removed while this run was in flight. Restore the step in the runbook and retry, "
                "skip it with a reason, or abort the run."
            )
            step.last_error = run.attention
            book.changed(step)
            book.event("step.needs_attention", {"reason": run.attention}, step=step.name)
            return None
        rule = definition.approval
        if rule and rule.applies(key.environment, run.mode) and step.approved_by is None:
            step.status = StepStatus.AWAITING_APPROVAL
            run.status = RunStatus.AWAITING_APPROVAL
            book.changed(step)
            book.event(
                "step.awaiting_approval",
                {"environment": key.environment, "two_person": rule.two_person},
                step=step.name,
            )
            return None
        if definition.manual and step.done_by is None:
            pauses.wait_for_human(book, step, definition.instructions or f"Do '{step.title}' by hand.")
            return None
        toolkit = self.toolkit
        if run.drill:
            if self.drill_toolkit is None:
                step.status, run.status = StepStatus.NEEDS_ATTENTION, RunStatus.NEEDS_ATTENTION
                run.attention = "this is a drill but the sandbox is not available in this process"
                book.changed(step)
                return None
            toolkit = self.drill_toolkit()
        toolkit = guarded(toolkit, lambda: book.flush(older_than=STALE_SECONDS), self._heartbeat(run.id))
        first_attempt = step.attempts == 0
        step.status = StepStatus.RUNNING
        step.attempts += 1
        step.started_at = step.started_at or utcnow()
        book.changed(step)
        if first_attempt and "waiting" in step.output:
            pass  # woken from a durable wait: the step started long ago
        elif first_attempt:
            book.event("step.started", step=step.name)
        else:
            book.event("step.attempt", {"attempt": step.attempts}, step=step.name)
        ctx = StepContext(
            journal=book,
            toolkit=toolkit,
            run_id=run.id,
            runbook=run.runbook,
            mode=run.mode,
            step=step.name,
            incident_id=run.incident_id,
            actor=run.initiated_by,
            drill=run.drill,
            key=key,
            state=run.context,
            completed={s.action: s.status.value for s in run.steps},
            waits=self.config.waits,
        )
        return _Work(ctx, definition, step)

    def _attempt(self, book: journal.Journal, work: _Work) -> str | None:
        """Run one attempt of a step; returns the step's name when it succeeded."""
        ctx, definition, step = work.ctx, work.definition, work.step
        failpoints.hit(f"before:{ctx.step}")
        try:
            output = ACTIONS[definition.action](ctx)
        except ProviderError as error:
            assert step.started_at is not None
            elapsed = (utcnow() - step.started_at).total_seconds()
            delay = self._backoff(definition, step.attempts)
            budget = definition.timeout_seconds
            if error.transient and step.attempts <= definition.retries and elapsed + delay < budget:
                self._retry_later(book, work, error, delay)
            elif error.transient:
                pauses.needs_attention(
                    book,
                    step,
                    f"gave up after {step.attempts} attempt(s) in {elapsed:.0f} s (budget {budget:.0f} s): "
                    f"{error}. What to do: check that system's status and keybot's network path to it, then "
                    "press Retry; if it stays down, do the step by hand and press Done by hand, or abort.",
                )
            else:
                pauses.needs_attention(book, step, str(error))
            return None
        except NeedsHuman as checklist:
            pauses.wait_for_human(book, step, str(checklist))
            return None
        except WaitFor as wait:
            pauses.durable_wait(book, step, wait)
            return None
        except NeedsDecision as question:
            pauses.wait_for_human(book, step, str(question), decide=True)
            return None
        except StepFailed as failure:
            pauses.needs_attention(book, step, str(failure))
            return None
        except RunAborted:
            return None
        except LeaseLost:
            raise
        except Exception as error:
            log.exception("step crashed", run_id=ctx.run_id, step=ctx.step)
            pauses.needs_attention(book, step, f"internal error ({type(error).__name__}): {error}")
            return None
        step.status = StepStatus.SUCCEEDED
        step.finished_at = utcnow()
        step.last_error = None
        step.output = output
        book.changed(step)
        book.event("step.succeeded", {"seconds": step.duration_seconds, **output}, step=step.name)
        return step.name

    def _backoff(self, definition: StepDefinition, attempts: int) -> float:
        delay: float = definition.backoff_seconds * (2 ** (attempts - 1)) * self.config.backoff_scale
        return min(delay, self.config.max_backoff_seconds) * (0.5 + random.random() / 2)

    def _retry_later(self, book: journal.Journal, work: _Work, error: ProviderError, delay: float) -> None:
        """Show the retry live ("attempt 2 of 6, next in 4 s"), written before the wait, then wait: in place
        for a short backoff, as a durable timer (the run parked until `wake_at`) for a long one."""
        step, total = work.step, work.definition.retries + 1
        reason = redact(str(error))
        step.last_error = f"{reason}; attempt {step.attempts} of {total}, next in {delay:.0f} s"[:1000]
        book.changed(step)
        book.event(
            "step.retrying",
            {"error": reason, "attempt": step.attempts, "of": total, "in_seconds": round(delay, 3)},
            step=step.name,
        )
        durable = self.config.durable_retry_after
        if durable is not None and delay >= durable:
            step.status = StepStatus.WAITING
            step.output = {**step.output, "waiting": step.last_error, "retrying": True}
            book.run.status, book.run.wake_at = RunStatus.WAITING, utcnow() + timedelta(seconds=delay)
            return  # the run pauses: the next write gives the lease back; the clock wakes it
        book.commit(hold_extra=delay, announce=True)
        time.sleep(delay)

    def resume_stale(self, limit: int = 50, *, woken: Collection[str] = ()) -> list[str]:
        """Pick up running runs whose process died; returns the runs resumed.

        A run qualifies when its lease expired, or its holder is a dead process on this host (the claim
        checks); runs a live process holds are skipped at once. A run that nobody holds qualifies once it
        has been left alone for UNCLAIMED_GRACE, or when `woken` names it (its durable wait just ended):
        a run a web replica has just opened or decided on is that replica's to execute and publish, not
        the clock's.
        """
        now = utcnow()
        unclaimed = Run.lease_owner.is_(None)
        settled = or_(Run.updated_at < now - UNCLAIMED_GRACE, Run.id.in_(list(woken)[:limit]))
        with self.database.session() as session:
            candidates = session.scalars(
                select(Run.id)
                .where(Run.status == RunStatus.RUNNING)
                .where(
                    or_(
                        and_(unclaimed, settled),
                        Run.lease_expires_at < now,
                        Run.lease_owner.startswith(f"{lease.HOST}:"),
                    )
                )
                .order_by(Run.created_at)
                .limit(limit)
            ).all()
        resumed = []
        for run_id in candidates:
            try:
                self.execute(run_id)
                resumed.append(run_id)
            except RunBusy:
                continue
        return resumed
