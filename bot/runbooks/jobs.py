"""The runbook engine's clock job: no run is left behind by a wait that ended or a process that died."""

from __future__ import annotations

from bot.runbooks.waits import wake_due
from bot.scheduling.jobs import ClockContext, job


@job("resume_stale_runs", every=lambda settings: settings.clock_tick_seconds)
def resume_stale_runs(clock: ClockContext) -> list[str]:
    """Runs whose durable wait is over are handed back first, then every run without a live process
    resumes, so a crashed `web` replica never strands a revocation."""
    woken = wake_due(clock.runtime.database)
    engine = clock.runtime.engine(durable_retries=True)
    engine.on_change = clock.progress
    resumed = engine.resume_stale(woken=woken)
    if clock.progress is not None:
        for run_id in resumed:
            clock.progress.flush(run_id)
    return sorted(set(woken) | set(resumed))
