"""SQLite allows one writer at a time; under many concurrent runs a writer can still find the database
locked after its busy timeout (lock upgrades are not queued fairly). Such a write is retried a few times
with backoff instead of failing a revocation. PostgreSQL never raises this."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import OperationalError

T = TypeVar("T")
ATTEMPTS = 6


def is_locked(error: OperationalError) -> bool:
    return "database is locked" in str(error.orig) or "database table is locked" in str(error.orig)


def retry_when_locked(write: Callable[[], T], attempts: int = ATTEMPTS) -> T:
    for attempt in range(attempts):
        try:
            return write()
        except OperationalError as error:
            if not is_locked(error) or attempt == attempts - 1:
                raise
            time.sleep(0.05 * 2**attempt)
    raise AssertionError("unreachable")
