"""Writes a run's transitions: each batch (the run row, the steps that changed, timeline events, extra
statements) is one transaction on one connection held for the whole run.

The run row is written first and only while this worker holds the lease, so a lost lease writes nothing;
an abort by someone else is never overwritten and is reported back (`aborted`).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, bindparam, case, insert, update
from sqlalchemy.exc import IntegrityError

from bot.db.base import utcnow
from bot.incidents import chain
from bot.incidents.chain import Head, PendingEvent
from bot.log import get_logger
from bot.runbooks import pg_transition
from bot.runbooks.models import Run, RunStatus, RunStep

log = get_logger(__name__)

WRITE_ATTEMPTS = 5
RUNS = cast(Table, Run.__table__)
STEPS = cast(Table, RunStep.__table__)


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
"""The run row, only while this worker holds its lease; an abort is never overwritten."""

WRITE_STEP = update(STEPS).where(STEPS.c.id == bindparam("step_id"))


class LeaseLost(Exception):
    """Another process took the run over (our lease expired); this process must stop touching it."""


@dataclass(frozen=True)
class Batch:
    run: dict[str, Any]  # status, attention, finished_at, context
    steps: list[dict[str, Any]]
    events: list[PendingEvent]
    work: list[Callable[[Connection], Any]]
    release: bool = False
    hold_extra: float = 0.0
    announce: bool = False  # tell `on_written` once it is durable (progress displays re-read the run)


@dataclass
class Writer:
    """Writes one run's batches on a connection it holds for the whole `execute` (no pool round trips)."""

    engine: Engine
    run_id: str
    incident_id: int | None
    worker: str
    lease_ttl: timedelta
    on_written: Callable[[], None] | None = None
    aborted: bool = False  # set once a write finds the run aborted by someone else
    _conn: Connection | None = None
    _head: Head | None = None

    def write(self, batch: Batch) -> None:
        """Commit the batch; raises LeaseLost, or the database's error (nothing of the batch is kept)."""
        if self._conn is None:
            self._conn = self.engine.connect()
            if self._conn.dialect.name == "postgresql":
                self._conn = self._conn.execution_options(isolation_level="AUTOCOMMIT")
        self._write(self._conn, batch)
        if batch.announce and self.on_written is not None:
            try:
                self.on_written()
            except Exception:
                log.exception("progress callback failed", run_id=self.run_id)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _write(self, conn: Connection, batch: Batch) -> None:
        for attempt in range(WRITE_ATTEMPTS):
            try:
                with conn.begin(), self._atomic(conn, batch):
                    if self._head is None:
                        self._head = self._read_head(conn)
                    rows: list[dict[str, Any]] = []
                    head = self._head
                    if self.incident_id is not None:
                        rows, head = chain.chained_rows(self.incident_id, self._head, batch.events)
                    stored = self._write_transition(conn, batch, rows)
                    for extra in batch.work:
                        extra(conn)
            except IntegrityError:
                if attempt == WRITE_ATTEMPTS - 1 or not self._head_moved(conn):
                    raise
                continue
            self._head = head
            if stored is RunStatus.ABORTED:
                self.aborted = True
            return

    @staticmethod
    def _atomic(conn: Connection, batch: Batch) -> AbstractContextManager[object]:
        """What makes the batch atomic beyond `conn.begin()`.

        The PostgreSQL connection is in autocommit (its `begin()` sends nothing): a batch without extra
        statements is one statement, atomic by itself, with no BEGIN and COMMIT round trips; a batch with
        extras gets a real transaction from the driver.
        """
        if conn.dialect.name != "postgresql" or not batch.work:
            return nullcontext()
        driver: Any = conn.connection.driver_connection
        return cast(AbstractContextManager[object], driver.transaction())

    def _write_transition(self, conn: Connection, batch: Batch, events: list[dict[str, Any]]) -> RunStatus:
        """The run row, the changed steps and the events; raises LeaseLost (and writes nothing) without
        the lease."""
        release = batch.release
        now = utcnow()
        owner = None if release else self.worker
        expiry = None if release else now + self.lease_ttl + timedelta(seconds=batch.hold_extra)
        if conn.dialect.name == "postgresql":
            stored = pg_transition.write(
                conn, run_id=self.run_id, worker=self.worker, run=batch.run, owner=owner, expiry=expiry,
                now=now, steps=batch.steps, events=events,
            )  # fmt: skip
        else:
            params = {
                "run_id": self.run_id,
                "worker": self.worker,
                **{f"new_{name}": value for name, value in batch.run.items()},
                "new_owner": owner,
                "new_expiry": expiry,
            }
            value = conn.execute(WRITE_RUN, params).scalar()
            stored = None if value is None else RunStatus(value)
            if stored is not None:
                if batch.steps:
                    conn.execute(WRITE_STEP, batch.steps)
                if events:
                    conn.execute(insert(chain.EVENTS), events)
        if stored is None:
            raise LeaseLost(f"run {self.run_id} is no longer leased to this process")
        return stored

    def _head_moved(self, conn: Connection) -> bool:
        """After a failed write: did someone else append to the incident (then retry on the new head)?"""
        with conn.begin():
            current = self._read_head(conn)
        moved, self._head = current != self._head, current
        return moved

    def _read_head(self, conn: Connection) -> Head:
        if self.incident_id is None:
            return Head(0, chain.GENESIS)
        return chain.head(conn, self.incident_id)
