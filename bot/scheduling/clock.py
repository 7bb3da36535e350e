"""`keybot clock`: the jobs the domains registered (bot/scheduling/jobs.py), run only by the leader.

One clock leads at a time through a lease in the database (bot/scheduling/leader.py); a standby takes
over when the leader's lease expires. `run_once` serves `keybot clock --once`, for cron and for tests.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from apscheduler.schedulers.blocking import BlockingScheduler

from bot.log import get_logger
from bot.notifications.service import Sender
from bot.runbooks.lease import new_worker_id
from bot.runtime import Runtime
from bot.scheduling import leader
from bot.scheduling.jobs import ClockContext, Job, RunProgress, registered

log = get_logger(__name__)
LEADER = "clock"
LEASE = timedelta(seconds=45)


class Clock:
    def __init__(self, runtime: Runtime, sender: Sender | None, progress: RunProgress | None = None) -> None:
        self.runtime = runtime
        self.context = ClockContext(runtime, sender, progress)
        self.holder = new_worker_id()
        self.jobs = registered()

    def leading(self) -> bool:
        return leader.acquire(self.runtime.database, LEADER, self.holder, LEASE)

    def run_job(self, job: Job) -> object:
        """Run one job now, logging its outcome; a failing job never stops the clock."""
        try:
            result = job.run(self.context)
        except Exception:
            log.exception("clock job failed", job=job.id)
            return None
        log.info("clock job ran", job=job.id, result=str(result)[:200])
        return result

    def _guarded(self, job: Job) -> Callable[[], None]:
        def run() -> None:
            if self.leading():
                self.run_job(job)

        return run

    def scheduler(self) -> BlockingScheduler:
        scheduler = BlockingScheduler(timezone="UTC")
        for job in self.jobs:
            scheduler.add_job(
                self._guarded(job),
                "interval",
                seconds=job.every(self.runtime.settings),
                id=job.id,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=job.misfire_grace_seconds,
                replace_existing=True,
            )
        return scheduler

    def run_once(self) -> dict[str, object] | None:
        """Every job once, as leader, then the lease is given back; None when another clock leads."""
        if not self.leading():
            return None
        try:
            return {job.id: self.run_job(job) for job in self.jobs}
        finally:
            leader.release(self.runtime.database, LEADER, self.holder)

    def run(self) -> None:
        try:
            self.scheduler().start()
        finally:
            leader.release(self.runtime.database, LEADER, self.holder)
