"""What one write of a run carries, and how it is written with Core statements (SQLite).

A transition is the run row, the steps that changed, the timeline events, and the few other rows a step
changes with it: notifications for the outbox, the incident's status, the key lock, the registry row of a
rotated key. They are data, not callbacks, so PostgreSQL can write them all in one statement
(pg_transition.py); here each table gets one statement, inside the writer's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, case, delete, func, insert, update

from bot.incidents.chain import EVENTS, PendingEvent
from bot.incidents.models import Incident, IncidentStatus
from bot.notifications.service import insert_outbox_rows
from bot.registry.models import Key, KeyStatus
from bot.runbooks.models import KeyLock, Run, RunStatus, RunStep

RUNS = cast(Table, Run.__table__)
STEPS = cast(Table, RunStep.__table__)
INCIDENTS = cast(Table, Incident.__table__)
LOCKS = cast(Table, KeyLock.__table__)
KEYS = cast(Table, Key.__table__)

STEP_FIELDS = (  # what a transition writes of a step (journal.StepState)
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


@dataclass(frozen=True)
class IncidentChange:
    """The incident's new status; `contained` and `resolved` stamp their times (contained only once).
    Resolving an incident also contains it."""

    status: IncidentStatus
    contained: bool = False
    resolved: bool = False

    def then(self, later: IncidentChange) -> IncidentChange:
        return IncidentChange(
            later.status, self.contained or later.contained, self.resolved or later.resolved
        )


@dataclass(frozen=True)
class KeyRotated:
    """The registry row now describes the replacement; the leaked secret's fingerprint is retired.
    `secret_family`/`secret_last4` of None keep what the row has."""

    provider_key_id: str | None  # None: keep the row's (a manual vendor's replacement has none we know)
    fingerprint: str | None
    rotated_at: datetime
    vault_path: str
    secret_family: str | None = None
    secret_last4: str | None = None
    status: KeyStatus = KeyStatus.ACTIVE  # COMPROMISED when a guarantee is missing (a step was skipped)


@dataclass(frozen=True)
class Batch:
    run: dict[str, Any]  # status, attention, finished_at, context, wake_at
    steps: list[dict[str, Any]]
    events: list[PendingEvent]
    notifications: list[dict[str, Any]] = field(default_factory=list)  # outbox rows (notifications.service)
    incident: IncidentChange | None = None
    release_lock: bool = False  # the run finished: its key is free again
    key_rotated: KeyRotated | None = None
    release: bool = False  # give up the lease
    hold_extra: float = 0.0
    announce: bool = False  # tell `on_written` once it is durable (progress displays re-read the run)


@dataclass(frozen=True)
class Stamp:
    """Which run a write is for, who writes it, and what it sets the run's lease to."""

    run_id: str
    key_id: int
    incident_id: int | None
    worker: str  # the lease holder the run row must still name
    owner: str | None  # the lease holder afterwards (None gives the run back)
    expiry: datetime | None
    now: datetime


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
        wake_at=case((_ABORTED, None), else_=_typed("new_wake_at", "wake_at")),
        version=RUNS.c.version
        + case((_ABORTED, 0), (RUNS.c.status == _typed("new_status", "status"), 0), else_=1),
        lease_owner=_typed("new_owner", "lease_owner"),
        lease_expires_at=_typed("new_expiry", "lease_expires_at"),
    )
    .returning(RUNS.c.status)
)
"""The run row, only while this worker holds its lease; an abort is never overwritten. The version goes
up when the status changes, so a person's decision names the pause they saw."""

WRITE_STEP = update(STEPS).where(STEPS.c.id == bindparam("step_id"))


def write_core(
    conn: Connection, batch: Batch, stamp: Stamp, events: list[dict[str, Any]]
) -> RunStatus | None:
    """The stored status after the write (ABORTED if someone aborted the run); None, with nothing
    written, if the lease is lost."""
    params = {
        "run_id": stamp.run_id,
        "worker": stamp.worker,
        "new_wake_at": None,
        **{f"new_{name}": value for name, value in batch.run.items()},
        "new_owner": stamp.owner,
        "new_expiry": stamp.expiry,
    }
    stored = conn.execute(WRITE_RUN, params).scalar()
    if stored is None:
        return None
    if batch.steps:
        conn.execute(WRITE_STEP, batch.steps)
    if events:
        conn.execute(insert(EVENTS), events)
    insert_outbox_rows(conn, batch.notifications)
    if batch.incident is not None and stamp.incident_id is not None:
        conn.execute(
            update(INCIDENTS)
            .where(INCIDENTS.c.id == stamp.incident_id)
            .values(_incident_values(batch.incident, stamp.now))
        )
    if batch.release_lock:
        conn.execute(delete(LOCKS).where(LOCKS.c.key_id == stamp.key_id, LOCKS.c.run_id == stamp.run_id))
    if batch.key_rotated is not None:
        conn.execute(update(KEYS).where(KEYS.c.id == stamp.key_id).values(_key_values(batch.key_rotated)))
    return RunStatus(stored)


def _incident_values(change: IncidentChange, now: datetime) -> dict[str, Any]:
    values: dict[str, Any] = {"status": change.status}
    if change.contained:
        values["contained_at"] = func.coalesce(INCIDENTS.c.contained_at, now)
    if change.resolved:
        values["resolved_at"] = now
    return values


def _key_values(rotated: KeyRotated) -> dict[str, Any]:
    values: dict[str, Any] = {
        "provider_key_id": func.coalesce(rotated.provider_key_id, KEYS.c.provider_key_id),
        "fingerprint": rotated.fingerprint,
        "last_rotated_at": rotated.rotated_at,
        "status": rotated.status,
        "vault_path": rotated.vault_path,
    }
    if rotated.secret_family is not None:
        values["secret_family"] = rotated.secret_family
    if rotated.secret_last4 is not None:
        values["secret_last4"] = rotated.secret_last4
    return values
