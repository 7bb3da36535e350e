"""Run leases: whoever holds an unexpired lease executes the run; an expired one may be taken by anyone.

A conditional UPDATE is atomic on SQLite and PostgreSQL alike, so two processes can never both believe
they hold a run. A lease held by a dead process on this same host is taken over at once instead of
waiting for it to expire.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from bot.db.base import utcnow
from bot.runbooks.models import Run

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


def release(session: Session, run_id: str, worker: str) -> None:
    session.execute(
        update(Run)
        .where(Run.id == run_id, Run.lease_owner == worker)
        .values(lease_owner=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )


def holder(session: Session, run_id: str) -> str | None:
    return session.scalar(select(Run.lease_owner).where(Run.id == run_id))
