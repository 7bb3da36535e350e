"""`keybot clock`: APScheduler jobs that only the leader runs.

- wake runs whose durable wait is over, and resume runs whose process died (expired lease), so a crashed
  `web` replica never strands a revocation;
- deliver queued notifications through Slack and settle deliveries interrupted mid-send;
- forget handled Slack event ids after two days.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from apscheduler.schedulers.blocking import BlockingScheduler

from bot.log import get_logger
from bot.notifications.service import Sender, deliver_pending, recover_interrupted
from bot.runbooks.lease import new_worker_id
from bot.runbooks.waits import wake_due
from bot.runtime import Runtime
from bot.scheduling import leader

log = get_logger(__name__)
LEADER = "clock"
LEASE = timedelta(seconds=45)


class Clock:
    def __init__(self, runtime: Runtime, sender: Sender | None) -> None:
        self.runtime = runtime
        self.sender = sender
        self.holder = new_worker_id()

    def leading(self) -> bool:
        return leader.acquire(self.runtime.database, LEADER, self.holder, LEASE)

    def _guarded(self, name: str, job: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            if not self.leading():
                return
            try:
                result = job()
                log.info("clock job ran", job=name, result=str(result)[:200])
            except Exception:
                log.exception("clock job failed", job=name)

        return run

    def resume_stale_runs(self) -> list[str]:
        """Runs whose wait is over are handed back first, then every run without a live process resumes."""
        woken = wake_due(self.runtime.database)
        resumed = self.runtime.engine(durable_retries=True).resume_stale()
        return sorted(set(woken) | set(resumed))

    def deliver(self) -> tuple[int, int]:
        if self.sender is None:
            return (0, 0)
        recover_interrupted(self.runtime.database, self.sender, older_than=timedelta(minutes=5))
        return deliver_pending(self.runtime.database, self.sender)

    def forget_events(self) -> int:
        from bot.slack.dedupe import forget_old

        return forget_old(self.runtime.database)

    def scheduler(self) -> BlockingScheduler:
        scheduler = BlockingScheduler(timezone="UTC")
        jobs: list[tuple[str, Callable[[], object], float]] = [
            ("resume_stale_runs", self.resume_stale_runs, self.runtime.settings.clock_tick_seconds),
            ("deliver_notifications", self.deliver, 15),
            ("forget_slack_events", self.forget_events, 3600),
        ]
        for name, job, seconds in jobs:
            scheduler.add_job(self._guarded(name, job), "interval", seconds=seconds, id=name, coalesce=True,
                              max_instances=1)  # fmt: skip
        return scheduler

    def run(self) -> None:
        try:
            self.scheduler().start()
        finally:
            leader.release(self.runtime.database, LEADER, self.holder)
