"""Run leases: whoever holds an unexpired lease executes the run; an expired one may be taken by anyone.

A conditional UPDATE is atomic on SQLite and PostgreSQL alike, so two processes can never both believe
they hold a run. A lease held by a dead process on this same host is taken over at once instead of
waiting for it to expire.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, or_, select, update
from sqlalchemy.orm import Session

from bot.db.base import utcnow
from bot.log import get_logger
from bot.runbooks.models import Run

log = get_logger(__name__)

HOST = socket.gethostname()


def new_worker_id() -> str:
    return f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _holder_is_dead(owner: str) -> bool:
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != HOST or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def claim(session: Session, run_id: str, worker: str, ttl: timedelta) -> bool:
    now = utcnow()
    claimed = session.execute(
        update(Run)
        .where(Run.id == run_id)
        .where(or_(Run.lease_owner.is_(None), Run.lease_owner == worker, Run.lease_expires_at < now))
        .values(lease_owner=worker, lease_expires_at=now + ttl)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount == 1:  # type: ignore[attr-defined]
        return True
    holder = session.scalar(select(Run.lease_owner).where(Run.id == run_id))
    if holder and _holder_is_dead(holder):
        taken = session.execute(
            update(Run)
            .where(Run.id == run_id, Run.lease_owner == holder)
            .values(lease_owner=worker, lease_expires_at=now + ttl)
            .execution_options(synchronize_session=False)
        )
        return bool(taken.rowcount == 1)  # type: ignore[attr-defined]
    return False


def extend(engine: Engine, run_id: str, worker: str, ttl: timedelta) -> bool:
    """Renew a lease this worker still holds (a heartbeat during a long outside call)."""
    with engine.begin() as conn:
        renewed = conn.execute(
            update(Run)
            .where(Run.id == run_id, Run.lease_owner == worker)
            .values(lease_expires_at=utcnow() + ttl)
        )
    return bool(renewed.rowcount == 1)


class Heartbeats:
    """One thread per process renews the leases of runs whose outside call is taking long, so a slow
    provider never lets another process take a run over mid-call. Registering a call costs a dict entry;
    nothing happens for calls shorter than their interval."""

    def __init__(self, tick: float = 0.25) -> None:
        self._tick = tick
        self._calls: dict[int, list[Any]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @contextmanager
    def during(self, every: float, beat: Callable[[], object]) -> Iterator[None]:
        token = id(beat) ^ threading.get_ident()
        with self._lock:
            self._calls[token] = [time.monotonic() + every, every, beat]
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="keybot-heartbeat", daemon=True)
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._calls.pop(token, None)

    def _loop(self) -> None:
        while True:
            time.sleep(self._tick)
            now = time.monotonic()
            with self._lock:
                due = [entry for entry in self._calls.values() if entry[0] <= now]
                for entry in due:
                    entry[0] = now + entry[1]
            for _, _, beat in due:
                try:
                    beat()
                except Exception:
                    log.exception("lease heartbeat failed")


HEARTBEATS = Heartbeats()


def release(session: Session, run_id: str, worker: str) -> None:
    session.execute(
        update(Run)
        .where(Run.id == run_id, Run.lease_owner == worker)
        .values(lease_owner=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )


def holder(session: Session, run_id: str) -> str | None:
    return session.scalar(select(Run.lease_owner).where(Run.id == run_id))
