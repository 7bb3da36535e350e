"""Writes a run's transitions in order, on a thread of their own.

The engine hands over a batch (the run row, the steps that changed, timeline events, extra statements) and
goes on with its next outside *read* while the batch is written; before any outside *change* it waits until
every batch is durable (`Writer.wait`). So the database's latency hides behind the provider's, and the
guarantee stays the same: nothing is changed outside before its intent is committed.

Each batch is one transaction on one connection this thread holds for the whole run. Batches are written
strictly in order; after a failed batch nothing more is written and the error is raised to the engine.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, bindparam, case, update
from sqlalchemy.exc import IntegrityError

from bot.db.base import utcnow
from bot.incidents import chain
from bot.incidents.chain import Head, PendingEvent
from bot.log import get_logger
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
    engine: Engine
    run_id: str
    incident_id: int | None
    worker: str
    lease_ttl: timedelta
    on_written: Callable[[], None] | None = None
    aborted: bool = False  # set once a write finds the run aborted by someone else
    _queue: queue.Queue[Batch | None] = field(default_factory=queue.Queue)
    _error: BaseException | None = None
    _head: Head | None = None
    _thread: threading.Thread | None = None

    def put(self, batch: Batch) -> None:
        self._raise_if_failed()
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=f"journal-{self.run_id}", daemon=True)
            self._thread.start()
        self._queue.put(batch)

    def wait(self) -> None:
        """Return once every batch handed over is durable; raise the error that stopped the writer."""
        self._queue.join()
        self._raise_if_failed()

    def close(self) -> None:
        """Write what is queued, then stop the thread (errors were or will be raised by `wait`)."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _loop(self) -> None:
        conn: Connection | None = None
        try:
            conn = self.engine.connect()
        except BaseException as error:  # every batch then fails with it; the queue is still drained
            self._error = error
        try:
            while (batch := self._queue.get()) is not None:
                try:
                    if self._error is None and conn is not None:
                        self._write(conn, batch)
                except BaseException as error:  # handed to the engine thread by wait()
                    self._error = error
                finally:
                    self._queue.task_done()
                if batch.announce and self._error is None and self.on_written is not None:
                    try:
                        self.on_written()
                    except Exception:
                        log.exception("progress callback failed", run_id=self.run_id)
            self._queue.task_done()
        finally:
            if conn is not None:
                conn.close()

    def _write(self, conn: Connection, batch: Batch) -> None:
        for attempt in range(WRITE_ATTEMPTS):
            try:
                with conn.begin():
                    if self._head is None:
                        self._head = self._read_head(conn)
                    stored = self._write_run(conn, batch)
                    if batch.steps:
                        conn.execute(WRITE_STEP, batch.steps)
                    for extra in batch.work:
                        extra(conn)
                    head = self._head
                    if self.incident_id is not None:
                        head = chain.write(conn, self.incident_id, head, batch.events)
            except IntegrityError:
                if attempt == WRITE_ATTEMPTS - 1 or not self._head_moved(conn):
                    raise
                continue
            self._head = head
            if stored is RunStatus.ABORTED:
                self.aborted = True
            return

    def _write_run(self, conn: Connection, batch: Batch) -> RunStatus:
        release = batch.release
        expiry = None if release else utcnow() + self.lease_ttl + timedelta(seconds=batch.hold_extra)
        params = {
            "run_id": self.run_id,
            "worker": self.worker,
            **{f"new_{name}": value for name, value in batch.run.items()},
            "new_owner": None if release else self.worker,
            "new_expiry": expiry,
        }
        stored = conn.execute(WRITE_RUN, params).scalar()
        if stored is None:
            raise LeaseLost(f"run {self.run_id} is no longer leased to this process")
        return RunStatus(stored)

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
