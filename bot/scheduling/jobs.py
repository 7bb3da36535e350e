"""Clock jobs, each registered by the domain that owns its work, so the clock knows none of them by name.

A job has a fixed id (APScheduler replaces, never duplicates, a job with the same id), runs coalesced (a
backlog of missed ticks runs once), one instance at a time, and is dropped when it is later than its
misfire grace time: the next tick does the same work, so a late run would only be duplicated effort.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.notifications.service import Sender
    from bot.runtime import Runtime

JOB_MODULES = (
    "bot.runbooks.jobs",
    "bot.notifications.jobs",
    "bot.slack.jobs",
    "bot.reminders.jobs",
    "bot.usage.jobs",
    "bot.alerts.jobs",
    "bot.postmortems.jobs",
)
"""Where domains declare their jobs; importing one registers its jobs."""


@dataclass(frozen=True)
class ClockContext:
    """What a job may use: the process's runtime and, when Slack is configured, the outbox's sender and
    the runs' progress publisher (a run the clock resumes updates its Slack message like any other)."""

    runtime: Runtime
    sender: Sender | None
    progress: RunProgress | None = None


class RunProgress(Protocol):
    """Told of every change of a run (the engine's `on_change`), and flushed when the run stops."""

    def __call__(self, run_id: str) -> None: ...

    def flush(self, run_id: str) -> None: ...


@dataclass(frozen=True)
class Job:
    id: str
    every: Callable[[Settings], float]  # seconds between runs, from settings
    run: Callable[[ClockContext], object]
    misfire_grace_seconds: int = 60


_JOBS: dict[str, Job] = {}


def job(
    job_id: str, *, every: float | Callable[[Settings], float], misfire_grace_seconds: int = 60
) -> Callable[[Callable[[ClockContext], object]], Callable[[ClockContext], object]]:
    """Register the decorated function as the clock job `job_id`; ids are unique across domains."""
    interval = every if callable(every) else (lambda _settings, seconds=float(every): seconds)

    def register(run: Callable[[ClockContext], object]) -> Callable[[ClockContext], object]:
        existing = _JOBS.get(job_id)
        if existing is not None and existing.run.__qualname__ != run.__qualname__:
            raise ValueError(f"clock job id {job_id!r} is registered twice")
        _JOBS[job_id] = Job(job_id, interval, run, misfire_grace_seconds)
        return run

    return register


def registered() -> list[Job]:
    """Every domain's jobs, in a stable order."""
    for module in JOB_MODULES:
        importlib.import_module(module)
    return sorted(_JOBS.values(), key=lambda j: j.id)
