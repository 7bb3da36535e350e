"""Runs are executed off the request thread, after Slack got its ack, by a bounded pool.

After each pass the notification outbox is delivered, so owners hear about a run as soon as it pauses or
ends; a failed delivery stays queued and never blocks the run.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from bot.log import get_logger
from bot.notifications.service import deliver_pending
from bot.runbooks.engine import RunBusy
from bot.runbooks.models import RunStatus
from bot.runtime import Runtime
from bot.slack.delivery import SlackSender
from bot.slack.progress import ProgressPublisher

log = get_logger(__name__)


@dataclass
class RunWorker:
    runtime: Runtime
    publisher: ProgressPublisher
    sender: SlackSender
    max_workers: int = 4
    _pool: ThreadPoolExecutor = field(init=False)

    def __post_init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="keybot-run")

    def submit(self, run_id: str) -> Future[RunStatus | None]:
        return self._pool.submit(self._execute, run_id)

    def _execute(self, run_id: str) -> RunStatus | None:
        engine = self.runtime.engine()
        engine.on_change = self.publisher
        status: RunStatus | None = None
        try:
            status = engine.execute(run_id)
        except RunBusy:
            log.info("run already executing elsewhere", run_id=run_id)
        except Exception:
            log.exception("run execution failed", run_id=run_id)
        finally:
            self.publisher.flush(run_id)
            self.deliver()
        return status

    def deliver(self) -> None:
        try:
            deliver_pending(self.runtime.database, self.sender)
        except Exception:
            log.exception("notification delivery pass failed")

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)
