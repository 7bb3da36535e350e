"""Writes a run's transitions (bot/runbooks/transition.py): each batch is atomic, on one connection held
for the whole run.

The run row is written first and only while this worker holds the lease, so a lost lease writes nothing;
an abort by someone else is never overwritten and is reported back (`aborted`). On PostgreSQL a batch is
one statement on an autocommit connection (pg_transition.py); on SQLite, one transaction of Core
statements.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from bot.db.base import utcnow
from bot.db.busy import retry_when_locked
from bot.incidents import chain
from bot.incidents.chain import Head
from bot.log import get_logger
from bot.runbooks import pg_transition
from bot.runbooks.models import RunStatus
from bot.runbooks.transition import Batch, Stamp, write_core

log = get_logger(__name__)

WRITE_ATTEMPTS = 5


class LeaseLost(Exception):
    """Another process took the run over (our lease expired); this process must stop touching it."""


@dataclass
class Writer:
    """Writes one run's batches on a connection it holds for the whole `execute` (no pool round trips)."""

    engine: Engine
    run_id: str
    key_id: int
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
            if self._conn.dialect.name == "postgresql" and pg_transition.ENABLED:
                self._conn = self._conn.execution_options(isolation_level="AUTOCOMMIT")
        conn = self._conn
        retry_when_locked(lambda: self._write(conn, batch))
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
                with (
                    conn.begin()
                ):  # on PostgreSQL (autocommit) this sends nothing: the batch is one statement
                    if self._head is None:
                        self._head = self._read_head(conn)
                    rows: list[dict[str, Any]] = []
                    head = self._head
                    if self.incident_id is not None:
                        rows, head = chain.chained_rows(self.incident_id, self._head, batch.events)
                    stored = self._write_transition(conn, batch, rows)
            except IntegrityError:
                if attempt == WRITE_ATTEMPTS - 1 or not self._head_moved(conn):
                    raise
                continue
            self._head = head
            if stored is RunStatus.ABORTED:
                self.aborted = True
            return

    def _write_transition(self, conn: Connection, batch: Batch, events: list[dict[str, Any]]) -> RunStatus:
        """Everything in the batch; raises LeaseLost (having written nothing) without the lease."""
        now = utcnow()
        stamp = Stamp(
            run_id=self.run_id,
            key_id=self.key_id,
            incident_id=self.incident_id,
            worker=self.worker,
            owner=None if batch.release else self.worker,
            expiry=None if batch.release else now + self.lease_ttl + timedelta(seconds=batch.hold_extra),
            now=now,
        )
        single = conn.dialect.name == "postgresql" and pg_transition.ENABLED
        write = pg_transition.write if single else write_core
        stored = write(conn, batch, stamp, events)
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
