"""Executes runs step by step. Every transition is committed (and on the timeline) before the next outside
call, so a process killed anywhere leaves a run another process can pick up where it stopped.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from bot.db.base import utcnow
from bot.db.session import Database
from bot.incidents.models import Incident, IncidentStatus
from bot.incidents.service import append_event, set_status
from bot.log import get_logger
from bot.providers.base import ProviderError
from bot.registry.models import Key
from bot.runbooks import failpoints, lease
from bot.runbooks.actions import ACTIONS
from bot.runbooks.context import KeyFacts, NeedsHuman, StepContext, StepFailed, Toolkit
from bot.runbooks.definitions import RunbookDefinition, StepDefinition
from bot.runbooks.models import KeyLock, Run, RunStatus, RunStep, StepStatus
from bot.secrets import redact

log = get_logger(__name__)


class RunBusy(Exception):
    """Another live process is executing this run."""


@dataclass(frozen=True)
class EngineConfig:
    lease_ttl: timedelta = timedelta(seconds=60)
    backoff_scale: float = 1.0
    max_backoff_seconds: float = 60.0


@dataclass
class _Work:
    ctx: StepContext
    definition: StepDefinition
    attempts: int
    started_at_ts: float


@dataclass
class Engine:
    database: Database
    runbooks: dict[str, RunbookDefinition]
    toolkit: Toolkit
    config: EngineConfig = field(default_factory=EngineConfig)
    worker: str = field(default_factory=lease.new_worker_id)
    on_change: Callable[[str], None] | None = None
    drill_toolkit: Callable[[], Toolkit] | None = None

    def execute(self, run_id: str) -> RunStatus:
        """Run until the run finishes or pauses (approval, manual step, needs attention)."""
        with self.database.session() as session:
            if not lease.claim(session, run_id, self.worker, self.config.lease_ttl):
                raise RunBusy(f"run {run_id} is being executed by {lease.holder(session, run_id)}")
        try:
            while True:
                with self.database.session() as session:
                    work = self._next(session, run_id)
                    run = session.get(Run, run_id)
                    status = run.status if run is not None else RunStatus.ABORTED
                self._changed(run_id)
                if work is None:
                    return status
                self._attempt(work)
        finally:
            with self.database.session() as session:
                lease.release(session, run_id, self.worker)

    def _changed(self, run_id: str) -> None:
        if self.on_change is not None:
            try:
                self.on_change(run_id)
            except Exception:
                log.exception("progress callback failed", run_id=run_id)

    def _next(self, session: Session, run_id: str) -> _Work | None:
        run = session.get(Run, run_id, populate_existing=True)
        if run is None or run.status is not RunStatus.RUNNING:
            return None
        step = next((s for s in run.steps if not s.status.done), None)
        if step is None:
            self._finish(session, run)
            return None
        definition = self.runbooks[run.runbook].steps[step.name]
        key = session.get(Key, run.key_id)
        assert key is not None
        rule = definition.approval
        if rule and rule.applies(key.environment, run.mode) and step.approved_by is None:
            step.status = StepStatus.AWAITING_APPROVAL
            run.status = RunStatus.AWAITING_APPROVAL
            self._event(
                session,
                run,
                step,
                "step.awaiting_approval",
                {"environment": key.environment, "two_person": rule.two_person},
            )
            return None
        if definition.manual and step.done_by is None:
            self._wait_for_human(session, run, step, definition.instructions or f"Do '{step.title}' by hand.")
            return None
        toolkit = self.toolkit
        if run.drill:
            if self.drill_toolkit is None:
                step.status, run.status = StepStatus.NEEDS_ATTENTION, RunStatus.NEEDS_ATTENTION
                run.attention = "this is a drill but the sandbox is not available in this process"
                return None
            toolkit = self.drill_toolkit()
        first_attempt = step.attempts == 0
        step.status = StepStatus.RUNNING
        step.attempts += 1
        step.started_at = step.started_at or utcnow()
        if first_attempt:
            self._event(session, run, step, "step.started", {})
        else:
            self._event(session, run, step, "step.attempt", {"attempt": step.attempts})
        ctx = StepContext(
            database=self.database,
            toolkit=toolkit,
            run_id=run.id,
            runbook=run.runbook,
            mode=run.mode,
            step=step.name,
            incident_id=run.incident_id,
            actor=run.initiated_by,
            drill=run.drill,
            key=KeyFacts.of(key),
            state=dict(run.context),
            completed={s.action: s.status.value for s in run.steps},
        )
        started = step.started_at.timestamp()
        return _Work(ctx, definition, step.attempts, started)

    def _attempt(self, work: _Work) -> None:
        ctx, definition = work.ctx, work.definition
        failpoints.hit(f"before:{ctx.step}")
        try:
            output = ACTIONS[definition.action](ctx)
        except ProviderError as error:
            elapsed = time.time() - work.started_at_ts
            if (
                error.transient
                and work.attempts <= definition.retries
                and elapsed < definition.timeout_seconds
            ):
                self._retry_later(ctx, work, str(error))
            else:
                why = "gave up after retries: " if error.transient else ""
                self._needs_attention(ctx, f"{why}{error}")
            return
        except NeedsHuman as checklist:
            with self.database.session() as session:
                run = session.get(Run, ctx.run_id)
                assert run is not None
                run.context = ctx.state
                self._wait_for_human(session, run, run.step(ctx.step), str(checklist))
            return
        except StepFailed as failure:
            self._needs_attention(ctx, str(failure))
            return
        except Exception as error:
            log.exception("step crashed", run_id=ctx.run_id, step=ctx.step)
            self._needs_attention(ctx, f"internal error ({type(error).__name__}): {error}")
            return
        with self.database.session() as session:
            run = session.get(Run, ctx.run_id)
            assert run is not None
            step = run.step(ctx.step)
            step.status = StepStatus.SUCCEEDED
            step.finished_at = utcnow()
            step.last_error = None
            step.output = output
            run.context = ctx.state
            self._event(session, run, step, "step.succeeded", {"seconds": step.duration_seconds, **output})
            lease.claim(session, run.id, self.worker, self.config.lease_ttl)
        failpoints.hit(f"after:{ctx.step}")

    def _retry_later(self, ctx: StepContext, work: _Work, reason: str) -> None:
        delay = work.definition.backoff_seconds * (2 ** (work.attempts - 1)) * self.config.backoff_scale
        delay = min(delay, self.config.max_backoff_seconds) * (0.5 + random.random() / 2)
        with self.database.session() as session:
            run = session.get(Run, ctx.run_id)
            assert run is not None
            step = run.step(ctx.step)
            step.last_error = redact(reason)[:1000]
            run.context = ctx.state
            self._event(session, run, step, "step.retrying", {"error": reason, "in_seconds": round(delay, 3)})
            lease.claim(session, run.id, self.worker, self.config.lease_ttl + timedelta(seconds=delay))
        self._changed(ctx.run_id)
        time.sleep(delay)

    def _needs_attention(self, ctx: StepContext, reason: str) -> None:
        reason = redact(reason)[:1000]
        with self.database.session() as session:
            run = session.get(Run, ctx.run_id)
            assert run is not None
            step = run.step(ctx.step)
            step.status = StepStatus.NEEDS_ATTENTION
            step.last_error = reason
            run.status = RunStatus.NEEDS_ATTENTION
            run.attention = f"{step.title}: {reason}"
            run.context = ctx.state
            self._event(session, run, step, "step.needs_attention", {"reason": reason})

    def _wait_for_human(self, session: Session, run: Run, step: RunStep, instructions: str) -> None:
        step.status = StepStatus.WAITING_MANUAL
        step.output = {"instructions": instructions}
        run.status = RunStatus.WAITING_MANUAL
        self._event(session, run, step, "step.waiting_manual", {"instructions": instructions})

    def _finish(self, session: Session, run: Run) -> None:
        run.status = RunStatus.SUCCEEDED
        run.finished_at = utcnow()
        lock = session.get(KeyLock, run.key_id)
        if lock is not None and lock.run_id == run.id:
            session.delete(lock)
        self._event(session, run, None, "run.succeeded", {})
        if run.incident_id is not None:
            incident = session.get(Incident, run.incident_id)
            if incident is not None:
                set_status(session, incident, IncidentStatus.RESOLVED, run.initiated_by)

    @staticmethod
    def _event(session: Session, run: Run, step: RunStep | None, kind: str, data: dict[str, object]) -> None:
        if run.incident_id is not None:
            append_event(
                session,
                run.incident_id,
                kind,
                run.initiated_by,
                data,
                run_id=run.id,
                step=step.name if step else None,
            )

    def resume_stale(self, limit: int = 50) -> list[str]:
        """Pick up running runs whose process died; returns the runs resumed.

        A run qualifies when its lease expired, or its holder is a dead process on this host (the claim
        checks); runs a live process holds are skipped at once.
        """
        now = utcnow()
        with self.database.session() as session:
            candidates = session.scalars(
                select(Run.id)
                .where(Run.status == RunStatus.RUNNING)
                .where(
                    or_(
                        Run.lease_owner.is_(None),
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
