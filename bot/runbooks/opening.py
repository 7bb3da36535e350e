"""Opening a run: its incident, run and step rows, the key's lock and status, and the first timeline
events, in one transaction. `RunPlan` is everything decided before the database is touched; this module
writes it with Core statements (any database), pg_open.py with one statement on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, delete, insert, select, update

from bot.db.upsert import insert_unless_present
from bot.incidents import chain
from bot.incidents.chain import GENESIS, Head, PendingEvent
from bot.incidents.models import Incident, IncidentStatus
from bot.incidents.service import next_incident_id
from bot.registry.models import Key, KeyStatus
from bot.runbooks.context import KeyFacts
from bot.runbooks.definitions import StepDefinition
from bot.runbooks.journal import RunState, StepState
from bot.runbooks.models import KeyLock, Run, RunStatus, RunStep
from bot.runbooks.refusals import KeyBusy, RunRefused
from bot.runbooks.run_context import RunContext
from bot.workspace import Workspace, current_columns

KEYS = cast(Table, Key.__table__)
INCIDENTS = cast(Table, Incident.__table__)
RUNS = cast(Table, Run.__table__)
STEPS = cast(Table, RunStep.__table__)
LOCKS = cast(Table, KeyLock.__table__)


@dataclass
class OpenedRun:
    """A run just opened and leased to `lease_owner`: everything its engine would otherwise read back."""

    state: RunState
    key: KeyFacts
    head: Head
    lease_owner: str | None


@dataclass(frozen=True)
class RunPlan:
    """A run about to be opened, validated; `incident` says whether the runbook frames it as one."""

    run_id: str
    key_id: int
    runbook: str
    mode: str
    actor: str
    reason: str
    severity: str
    drill: bool
    contain: bool
    incident: bool
    steps: list[tuple[str, StepDefinition]]
    now: datetime
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    authorize: Callable[[KeyFacts], None] | None = None  # raises NotAllowed; nothing is written then
    workspace: dict[str, str | None] = field(default_factory=current_columns)
    """The Slack workspace of the request opening the run (bot/workspace.py); stored on the run."""

    def check(self, key: KeyFacts) -> None:
        if self.authorize is not None:
            self.authorize(key)

    @property
    def definitions(self) -> dict[str, Any]:
        """What `runs.plan` keeps: each step's definition as the run starts."""
        return {name: step.model_dump(mode="json", exclude_none=True) for name, step in self.steps}

    @property
    def context(self) -> RunContext:
        return {"reason": self.reason, "contain": self.contain}

    @property
    def key_status(self) -> KeyStatus:
        return KeyStatus.COMPROMISED if self.incident else KeyStatus.ROTATING

    def title(self, key: KeyFacts) -> str:
        return f"{'[DRILL] ' if self.drill else ''}Leaked key {key.name} ({key.environment})"[:300]

    def events(self, key: KeyFacts) -> list[PendingEvent]:
        started = {"runbook": self.runbook, "mode": self.mode, "drill": self.drill}
        return [
            PendingEvent.now(
                "incident.opened",
                self.actor,
                {"title": self.title(key), "reason": self.reason, "key_status_before": key.status},
            ),
            PendingEvent.now("run.started", self.actor, started, run_id=self.run_id),
        ]

    def opened(self, key: KeyFacts, incident_id: int | None, step_ids: list[int], head: Head) -> OpenedRun:
        state = RunState(
            id=self.run_id,
            runbook=self.runbook,
            mode=self.mode,
            key_id=self.key_id,
            incident_id=incident_id,
            status=RunStatus.RUNNING,
            initiated_by=self.actor,
            drill=self.drill,
            attention=None,
            context=self.context,
            finished_at=None,
            plan=dict(self.steps),
            steps=[
                StepState(step_id, name, step.action, step.title)
                for step_id, (name, step) in zip(step_ids, self.steps, strict=True)
            ],
            incident_status=IncidentStatus.OPEN if incident_id is not None else None,
            incident_opened_at=self.now if incident_id is not None else None,
            workspace=Workspace.of(self.workspace["slack_enterprise_id"], self.workspace["slack_team_id"]),
        )
        return OpenedRun(state, key, head, self.lease_owner)


def open_with_core(engine: Engine, plan: RunPlan) -> OpenedRun:
    """Open the run with one Core statement per table; raises RunRefused (unknown key) or KeyBusy."""
    with engine.begin() as conn:
        key = KeyFacts.load(conn, plan.key_id)
        if key is None:
            raise RunRefused(f"no key #{plan.key_id} in the registry")
        plan.check(key)
        incident_id, head = None, Head(0, GENESIS)
        if plan.incident:
            chosen = next_incident_id(conn.dialect.name, drill=plan.drill)
            incident_id = conn.execute(
                insert(INCIDENTS)
                .values(
                    **({} if chosen is None else {"id": chosen}),
                    key_id=plan.key_id,
                    title=plan.title(key),
                    opened_by=plan.actor,
                    reason=plan.reason,
                    severity=plan.severity,
                    drill=plan.drill,
                    opened_at=plan.now,
                )
                .returning(INCIDENTS.c.id)
            ).scalar_one()
        conn.execute(
            insert(RUNS).values(
                id=plan.run_id,
                runbook=plan.runbook,
                mode=plan.mode,
                key_id=plan.key_id,
                incident_id=incident_id,
                initiated_by=plan.actor,
                reason=plan.reason,
                drill=plan.drill,
                context=plan.context,
                plan=plan.definitions,
                lease_owner=plan.lease_owner,
                lease_expires_at=plan.lease_expires_at,
                **plan.workspace,
            )
        )
        rows = [
            {"run_id": plan.run_id, "position": i, "name": name, "action": step.action, "title": step.title}
            for i, (name, step) in enumerate(plan.steps)
        ]
        step_ids = conn.execute(insert(STEPS).returning(STEPS.c.id, sort_by_parameter_order=True), rows)
        ids = list(step_ids.scalars().all())
        _take_lock(conn, plan, key.name)
        conn.execute(update(KEYS).where(KEYS.c.id == plan.key_id).values(status=plan.key_status))
        if incident_id is not None:
            head = chain.write(conn, incident_id, head, plan.events(key))
    return plan.opened(key, incident_id, ids, head)


def _take_lock(conn: Connection, plan: RunPlan, key_name: str) -> None:
    """One active run per key: the lock row's primary key is the key id; a finished run's lock is stale.

    The insert is tried first (on PostgreSQL a concurrent starter waits for ours to commit, then sees it);
    only when the key is taken is the holder looked at.
    """
    key_id = plan.key_id
    lock = {"key_id": key_id, "run_id": plan.run_id, "holder": plan.actor, "acquired_at": plan.now}
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
